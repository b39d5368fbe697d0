"""Jobs: the engine's running and queued jobs in the status bar, with progress and cancel.

:class:`JobsController` places a :class:`~weightlab.gui.jobs_view.JobsStatus`
in the window's status bar over the workspace's
:class:`~weightlab.app.jobs.JobList` and binds it to the engine adapter's job
signals (``jobQueued``, ``jobStarted``, ``jobProgress``, ``jobFinished``);
its cancel buttons call the adapter's ``cancel_job``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from weightlab.app.workspace import Workspace

from ..engine_adapter import EngineAdapter
from ..jobs_view import JobsStatus
from .host import WindowHost


class JobsController(QObject):
    """Shows the engine's jobs in the status bar.

    Parameters
    ----------
    window:
        The main window (its status bar).
    workspace:
        Holds the jobs list (:attr:`Workspace.jobs`).
    engine:
        The adapter whose jobs are shown and cancelled.
    """

    def __init__(self, window: WindowHost, workspace: Workspace, engine: EngineAdapter):
        super().__init__(window)
        self.status = JobsStatus(workspace.jobs, window)
        self.status.bind(engine)
        window.statusBar().addPermanentWidget(self.status)

    def cancel(self, job_id: int) -> None:
        """Ask the engine to cancel job ``job_id`` (the list changes when the engine reports it)."""
        self.status.cancelRequested.emit(job_id)
