"""A page that scrolls inside itself when its space is smaller than its contents' minimum.

The centre's tab pages (sweeps, ranking, training) have set-up forms and
charts that need more room than a 1024x640 window leaves them. Wrapped with
:func:`scroll_page`, a page asks its tab widget for almost no minimum size and
scrolls its own contents below their minimum, instead of widening the whole
centre (which then scrolled, cutting the histogram's header and the tab bar).
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


def scroll_page(page: QWidget, inner: QWidget) -> QScrollArea:
    """Show ``inner`` filling ``page``, scrolling inside it when ``page`` is smaller than ``inner``'s minimum.

    Parameters
    ----------
    page:
        The widget that is added to a tab widget or splitter; gets a margin-less
        layout holding the scroll area.
    inner:
        The page's contents (with their own layout); resized to the viewport,
        never below their minimum size hint.

    Returns
    -------
    QScrollArea
        The frameless scroll area holding ``inner`` (object name ``"page-scroll"``).
    """
    area = QScrollArea(page)
    area.setObjectName("page-scroll")
    area.setWidget(inner)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    lay = QVBoxLayout(page)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(area)
    return area
