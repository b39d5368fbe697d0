"""Engine jobs in the status bar: :class:`JobsStatus` and its popup list :class:`JobsPopup`.

:class:`JobsStatus` shows the job that runs now in a compact entry (its label,
a small progress bar, busy while the fraction is unknown, and a cancel button)
and how many more wait ("+2 queued"). Clicking the entry opens
:class:`JobsPopup`, a list of every job the :class:`~weightlab.app.jobs.JobList`
holds: active ones first, with their progress, message and a cancel button,
then the latest finished ones, greyed.

Both widgets only draw the list; the list is fed by :meth:`JobsStatus.bind`,
which connects the engine adapter's typed job signals to it and the widget's
:attr:`JobsStatus.cancelRequested` to the adapter's ``cancel_job``. Everything
shown changes with an event of the list; the one timer (the entry's show
delay, :data:`SHOW_DELAY_MS`) is the widget's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from weightlab.app.jobs import FINISHED_STATES, JobEvent, JobList, JobRecord

__all__ = ["JobsPopup", "JobsStatus", "state_text"]

#: Resolution of the determinate progress bars (fraction * BAR_STEPS).
BAR_STEPS = 1000
#: Widest the compact entry's label gets before it is elided (px).
LABEL_MAX_PX = 220
#: Tallest the popup's list gets before it scrolls (px).
POPUP_MAX_LIST_PX = 360
#: How long jobs must have been active before the status bar shows them (ms): an
#: evaluation after each edit often takes milliseconds, and the entry would flash
#: (and shift the status bar's other entries) for every one of them.
SHOW_DELAY_MS = 400


def state_text(job: JobRecord, now: float | None = None) -> str:
    """One line about ``job`` for the list: ``"running · 42 %"``, ``"done in 1.2 s"``, ``"failed"``.

    ``now`` (a time of the list's clock) adds the elapsed time of a running
    job; finished jobs show how long they ran when they ran at all.
    """
    if job.state == "running":
        text = "running" if job.fraction is None else f"running · {100 * job.fraction:.0f} %"
        elapsed = job.elapsed(now) if now is not None else None
        return text + (f" · {elapsed:.0f} s" if elapsed is not None and elapsed >= 1 else "")
    if job.state == "done":
        elapsed = job.elapsed(job.finished_at or 0.0)
        return "done" + (f" in {elapsed:.1f} s" if elapsed else "")
    return job.state


def _set_fraction(bar: QProgressBar, fraction: float | None) -> None:
    """Show ``fraction`` on ``bar``; a busy (indeterminate) bar for None."""
    if fraction is None:
        if bar.maximum() != 0:
            bar.setRange(0, 0)
        return
    if bar.maximum() != BAR_STEPS:
        bar.setRange(0, BAR_STEPS)
    bar.setValue(round(fraction * BAR_STEPS))


def _small_bar(width: int) -> QProgressBar:
    bar = QProgressBar()
    bar.setTextVisible(False)
    bar.setFixedWidth(width)
    bar.setMaximumHeight(14)
    bar.setRange(0, BAR_STEPS)
    return bar


def _cancel_button(parent: QWidget, tip: str) -> QToolButton:
    button = QToolButton(parent)
    button.setIcon(parent.style().standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton))
    button.setAutoRaise(True)
    button.setToolTip(tip)
    button.setAccessibleName("Cancel job")
    button.setCursor(Qt.CursorShape.ArrowCursor)
    return button


def _elide(widget: QWidget, text: str, width: int) -> str:
    return widget.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width)


class _ElidedLabel(QLabel):
    """A one-line label that elides its text to the width it is given (full text in :attr:`full_text`)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.full_text = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        """Show ``text``, elided with "…" when it does not fit."""
        self.full_text = text
        self._elide()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(_elide(self, self.full_text, max(0, self.width())))


def _tooltip(job: JobRecord) -> str:
    lines = [job.label, state_text(job)]
    if job.message:
        lines.append(job.message)
    return "\n".join(lines)


class _JobRow(QFrame):
    """One job in the popup: state, label, progress bar, message and cancel."""

    def __init__(self, job: JobRecord, on_cancel: Callable[[int], object], parent: QWidget | None = None):
        super().__init__(parent)
        self.job_id = job.job_id
        self._shape: tuple[str, bool] | None = None
        self.title = _ElidedLabel()
        self.state = QLabel()
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.message = _ElidedLabel()
        self.bar = _small_bar(110)
        self.cancel = _cancel_button(self, "Cancel this job")
        self.cancel.clicked.connect(lambda: on_cancel(self.job_id))

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(12)
        top.addWidget(self.title, 1)
        top.addWidget(self.state)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.bar)
        text = QVBoxLayout()
        text.setContentsMargins(0, 0, 0, 0)
        text.setSpacing(1)
        text.addLayout(top)
        text.addLayout(bottom)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addLayout(text, 1)
        lay.addWidget(self.cancel, 0, Qt.AlignmentFlag.AlignVCenter)
        self.show_job(job)

    def show_job(self, job: JobRecord) -> bool:
        """Draw ``job``'s current record; True when the row's height or place in the list may change."""
        shape = (job.state, bool(job.message))
        reshaped, self._shape = shape != self._shape, shape
        self.title.set_full_text(job.label)
        self.state.setText(state_text(job))
        self.message.set_full_text(job.message)
        # Secondary text while active; finished rows are greyed as a whole (below).
        self.message.setForegroundRole(
            QPalette.ColorRole.PlaceholderText if job.active else QPalette.ColorRole.WindowText
        )
        self.message.setVisible(bool(job.message) or job.state == "running")
        self.bar.setVisible(job.state == "running")
        if job.state == "running":
            _set_fraction(self.bar, job.fraction)
        self.cancel.setVisible(job.active)
        # Finished jobs are greyed by the palette's disabled colours (light and dark alike).
        self.setEnabled(job.active)
        self.setToolTip(_tooltip(job))
        return reshaped


class JobsPopup(QFrame):
    """The list of all jobs, shown as a popup above the status bar.

    Active jobs come first in the order they were added, then finished ones,
    the latest first. ``cancelRequested(job_id)`` is emitted by a row's cancel
    button; "Clear finished" empties the finished part of the list.
    """

    cancelRequested = Signal(int)

    def __init__(self, jobs: JobList, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.jobs = jobs
        self.rows: dict[int, _JobRow] = {}
        self._anchor: QWidget | None = None

        title = QLabel("Jobs")
        bold = title.font()
        bold.setBold(True)
        title.setFont(bold)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove the finished jobs from this list")
        self.clear_button.clicked.connect(lambda: self.jobs.clear_finished())
        head = QHBoxLayout()
        head.setContentsMargins(8, 6, 6, 2)
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.clear_button)

        self.empty = QLabel("No jobs")
        self.empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._body = QWidget()
        self._body.setBackgroundRole(QPalette.ColorRole.Base)
        self._list = QVBoxLayout(self._body)
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.setSpacing(0)
        self._list.addWidget(self.empty)
        self._list.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(self._body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll = scroll

        self._layout = lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(2)
        lay.addLayout(head)
        lay.addWidget(scroll, 1)
        self.setFixedWidth(400)
        for job in jobs:
            self._add_row(job)
        self._arrange()

    def ordered(self) -> list[JobRecord]:
        """The records in the order the popup lists them."""
        return [*self.jobs.active, *reversed(self.jobs.finished)]

    def on_event(self, event: JobEvent) -> None:
        """Follow one change of the job list."""
        if event.kind == "added":
            self._add_row(event.job)
        elif event.kind == "changed":
            row = self.rows.get(event.job.job_id)
            if row is None:
                self._add_row(event.job)
            elif not row.show_job(event.job):
                return  # progress only: same rows, same order, same heights
        else:
            row = self.rows.pop(event.job.job_id, None)
            if row is not None:
                self._list.removeWidget(row)
                row.deleteLater()
        self._arrange()

    def _add_row(self, job: JobRecord) -> None:
        row = _JobRow(job, self.cancelRequested.emit, self._body)
        self.rows[job.job_id] = row

    def _arrange(self) -> None:
        order = [self.rows[j.job_id] for j in self.ordered() if j.job_id in self.rows]
        for i, row in enumerate(order):
            if self._list.indexOf(row) != i:
                self._list.removeWidget(row)
                self._list.insertWidget(i, row)
            row.setAutoFillBackground(True)
            row.setBackgroundRole(QPalette.ColorRole.AlternateBase if i % 2 else QPalette.ColorRole.Base)
        self.empty.setVisible(not order)
        self.clear_button.setEnabled(bool(self.jobs.finished))
        rows_height = sum(r.sizeHint().height() for r in order) or self.empty.sizeHint().height() * 3
        self._scroll.setFixedHeight(min(rows_height + 2, POPUP_MAX_LIST_PX))
        self.resize(self._size())
        if self.isVisible() and self._anchor is not None:
            self._place(self._anchor)  # grew or shrank: keep it against its anchor

    def popup_at(self, anchor: QWidget) -> None:
        """Show the list above ``anchor`` (right edges aligned), on ``anchor``'s screen; below it when there is no room above."""
        self._anchor = anchor
        self._arrange()
        self.winId()  # the native window first: placed before it exists, some platforms shift it by a frame
        self._place(anchor)
        self.show()

    def _size(self) -> QSize:
        self._layout.activate()  # the minimum size must follow the rows now, not at the next event
        return self.sizeHint().expandedTo(self.minimumSize()).boundedTo(self.maximumSize())

    def _place(self, anchor: QWidget) -> None:
        size = self._size()
        corner = anchor.mapToGlobal(QPoint(anchor.width(), 0))
        screen = anchor.screen()
        if screen is None:
            screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        x = max(area.left(), min(corner.x() - size.width(), area.right() + 1 - size.width()))
        y = corner.y() - size.height()
        if y < area.top():
            y = max(area.top(), min(corner.y() + anchor.height(), area.bottom() + 1 - size.height()))
        self.setGeometry(QRect(QPoint(x, y), size))


class JobsStatus(QWidget):
    """Status-bar entry for engine jobs: the running job, a "+N queued" count, a popup list.

    Parameters
    ----------
    jobs : JobList, optional
        The list to show (the workspace's); a new one when not given.
    parent : QWidget, optional
    show_delay_ms : int, default SHOW_DELAY_MS
        Jobs appear in the entry once some job has been active this long
        (then at once, until none is active); 0 shows them at once. The popup
        always lists every job.

    Signals
    -------
    cancelRequested(job_id: int):
        The user asked to cancel a queued or running job (the entry's cancel
        button, or one in the popup). :meth:`bind` connects it to the
        adapter's ``cancel_job``; the list changes when the adapter reports
        the job cancelled, not before.

    Notes
    -----
    The entry is hidden while the list is empty. With finished jobs only (or
    active ones still within the delay), it shows a small "Jobs" button that
    opens the list. The delay's timer is the widget's own.
    """

    cancelRequested = Signal(int)

    def __init__(
        self,
        jobs: JobList | None = None,
        parent: QWidget | None = None,
        *,
        show_delay_ms: int = SHOW_DELAY_MS,
    ):
        super().__init__(parent)
        self.jobs = jobs if jobs is not None else JobList()
        #: The job the entry shows (None: none shown).
        self.current: JobRecord | None = None
        self._revealed = False  # active jobs are shown (the delay has passed since the list had none)
        self._delay_ms = max(0, int(show_delay_ms))
        self._delay = QTimer(self)  # owned: stops with the widget
        self._delay.setSingleShot(True)
        self._delay.timeout.connect(self._reveal)

        self.label = QToolButton()
        self.label.setAutoRaise(True)
        self.label.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.label.setToolTip("Show all jobs")
        self.bar = _small_bar(100)
        self.cancel = _cancel_button(self, "Cancel this job")
        self.cancel.clicked.connect(self._cancel_current)
        self.more = QToolButton()
        self.more.setAutoRaise(True)
        self.more.setToolTip("Show all jobs")
        self.popup = JobsPopup(self.jobs, self)
        self.popup.cancelRequested.connect(self.cancelRequested)
        for button in (self.label, self.more):
            button.clicked.connect(self.toggle_popup)

        # Only as wide as its contents: the status bar's spare width goes to its message.
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.label)
        lay.addWidget(self.bar, 0, Qt.AlignmentFlag.AlignVCenter)
        lay.addWidget(self.cancel)
        lay.addWidget(self.more)

        # The list may outlive this widget (the workspace holds it): stop listening on deletion.
        listener, jobs_list = self._on_event, self.jobs
        jobs_list.subscribe(listener)
        self.destroyed.connect(lambda *_: jobs_list.unsubscribe(listener))
        self._refresh()

    # -- wiring ---------------------------------------------------------------------
    def bind(self, adapter: Any) -> None:
        """Show ``adapter``'s jobs and send cancel requests to it.

        ``adapter`` is a :class:`~weightlab.gui.engine_adapter.EngineAdapter`
        (or the tests' fake): its ``jobQueued(JobInfo)``, ``jobStarted(JobInfo)``,
        ``jobProgress(JobProgress)`` and ``jobFinished(JobInfo)`` signals feed
        :attr:`jobs`; :attr:`cancelRequested` calls its ``cancel_job(job_id)``.
        """
        for signal in (adapter.jobQueued, adapter.jobStarted, adapter.jobFinished):
            signal.connect(self.show_info)
        adapter.jobProgress.connect(self.show_progress)
        self.cancelRequested.connect(adapter.cancel_job)

    def show_info(self, info: Any) -> None:
        """Record a state change of a job (a ``JobInfo``: job_id, kind, label, state, message).

        A job not in the list yet is added in the reported state; a final
        state finishes it.
        """
        job_id, state = int(info.job_id), str(info.state)
        if job_id not in self.jobs:
            self.jobs.add(job_id, info.kind, info.label, state=state, message=info.message)
        elif state in FINISHED_STATES:
            self.jobs.finish(job_id, state, info.message or None)
        else:
            self.jobs.update(job_id, state=state, message=info.message or None)

    def show_progress(self, progress: Any) -> None:
        """Record progress of a job (a ``JobProgress``: job_id, fraction, message, partial).

        Progress of a job the list does not hold (one that was removed) is ignored.
        """
        if int(progress.job_id) in self.jobs:
            self.jobs.update(
                progress.job_id,
                fraction=progress.fraction,
                message=progress.message,
                partial=progress.partial,
            )

    # -- drawing --------------------------------------------------------------------
    def toggle_popup(self) -> None:
        """Open the list of all jobs above this entry, or close it."""
        if self.popup.isVisible():
            self.popup.hide()
        else:
            self.popup.popup_at(self)

    def _cancel_current(self) -> None:
        if self.current is not None:
            self.cancelRequested.emit(self.current.job_id)

    def _on_event(self, event: JobEvent) -> None:
        self.popup.on_event(event)
        self._refresh()

    @property
    def pending(self) -> bool:
        """True while active jobs wait for the show delay before they appear in the entry."""
        return self._delay.isActive()

    def _reveal(self) -> None:
        self._revealed = True
        self._refresh()

    def _refresh(self) -> None:
        active = self.jobs.active
        if not active:
            self._revealed = False
            self._delay.stop()
        elif not self._revealed:
            if self._delay_ms == 0:
                self._revealed = True
            elif not self._delay.isActive():
                self._delay.start(self._delay_ms)
        if not self._revealed:
            active = ()
        running = [j for j in active if j.state == "running"]
        current = running[0] if running else (active[0] if active else None)
        self.current = current
        others = [j for j in active if j is not current]
        for widget in (self.bar, self.cancel):
            widget.setVisible(current is not None)
        if current is None:
            self.label.setText("Jobs")
            self.label.setToolTip("Show the finished jobs")
        else:
            prefix = "" if current.state == "running" else "Queued: "
            self.label.setText(_elide(self.label, prefix + current.label, LABEL_MAX_PX))
            self.label.setToolTip(_tooltip(current) + "\n\nClick to show all jobs")
            _set_fraction(self.bar, 0.0 if current.state == "queued" else current.fraction)
            self.bar.setToolTip(state_text(current))
        self.more.setVisible(bool(others))
        if others:
            waiting = all(j.state == "queued" for j in others)
            self.more.setText(f"+{len(others)} " + ("queued" if waiting else "more"))
        has_jobs = bool(active) or bool(self.jobs.finished)
        if not has_jobs or self.parentWidget() is not None:
            self.setVisible(has_jobs)  # without a parent, showing would open a window of its own
