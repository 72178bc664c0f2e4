"""Figures and panels inside dock widgets: figures rendered off the GUI thread, shown scaled to the dock width.

Matplotlib figures are drawn to pixels in a worker (:func:`make_figures`) and shown as images that keep their
aspect ratio at any dock width (:class:`FigureImage`); :class:`FigureWindow` opens them full size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QGridLayout, QGroupBox, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

if TYPE_CHECKING:  # matplotlib is imported where figures are made and drawn: in workers, not with the panel
    from matplotlib.figure import Figure

FIGURE_DPI = 110  # figures drawn for docks: sharp at their width, light to render
#: Matplotlib is not thread-safe (shared font caches): workers make and draw figures one at a time.
_MATPLOTLIB = threading.RLock()


def group(title: str, *items) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for item in items:
        if isinstance(item, QWidget):
            layout.addWidget(item)
        else:
            layout.addLayout(item)
    return box


def label_grid(fields) -> QGridLayout:
    """Labelled fields two to a row: ``fields`` is a sequence of (label, widget)."""
    grid = QGridLayout()
    for k, (label, field) in enumerate(fields):
        grid.addWidget(QLabel(label), k // 2, 2 * (k % 2))
        grid.addWidget(field, k // 2, 2 * (k % 2) + 1)
    grid.setColumnStretch(1, 1)
    grid.setColumnStretch(3, 1)
    return grid


def scroll_area(message: str) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    set_message(area, message)
    return area


def set_message(area: QScrollArea, message: str) -> None:
    label = QLabel(message)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    area.setWidget(label)


def rendered(figure: Figure) -> tuple[Figure, np.ndarray]:
    """A figure and its picture (H, W, 4) uint8, drawn by Agg: safe in a worker thread, so the GUI only shows it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with _MATPLOTLIB:
        figure.set_dpi(FIGURE_DPI)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        return figure, np.array(canvas.buffer_rgba())


def make_figures(jobs: dict[str, Callable[[], list[Figure]]]) -> dict[str, list[tuple[Figure, np.ndarray]]]:
    """Make and draw each tab's figures (run in a worker)."""
    with _MATPLOTLIB:
        return {key: [rendered(figure) for figure in make()] for key, make in jobs.items()}


class FigureImage(QLabel):
    """A drawn figure that scales to the dock's width (never above its own size), keeping its proportions."""

    def __init__(self, rgba: np.ndarray) -> None:
        super().__init__()
        self.rgba = np.ascontiguousarray(rgba)
        height, width = self.rgba.shape[:2]
        image = QImage(self.rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        self.pixmap_full = QPixmap.fromImage(image.copy())
        self.setMinimumWidth(120)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def hasHeightForWidth(self) -> bool:
        """Its height follows its width."""
        return True

    def heightForWidth(self, width: int) -> int:
        """The height that keeps the figure's proportions at ``width``."""
        full = self.pixmap_full
        return int(full.height() * min(width, full.width()) / max(full.width(), 1))

    def resizeEvent(self, event) -> None:
        """Scale the picture to the new width."""
        width = min(event.size().width(), self.pixmap_full.width())
        self.setPixmap(self.pixmap_full.scaledToWidth(max(width, 1), Qt.TransformationMode.SmoothTransformation))
        self.setFixedHeight(self.heightForWidth(event.size().width()))
        super().resizeEvent(event)


def show_figures(area: QScrollArea, rendered: list[tuple[Figure, np.ndarray]]) -> list[FigureImage]:
    """Put drawn figures one under the other in a scroll area, each scaled to the dock's width."""
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    images = [FigureImage(rgba) for _, rgba in rendered]
    for image in images:
        layout.addWidget(image)
    layout.addStretch()
    area.setWidget(holder)
    return images


class FigureSlot(QWidget):
    """A place in a dock for one figure drawn in a worker: shows its picture at the dock's width."""

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.figure: Figure | None = None
        self.content: QWidget = QLabel(message)
        self.setLayout(QVBoxLayout())
        self.layout().setContentsMargins(0, 0, 0, 0)
        self.layout().addWidget(self.content)

    def set_picture(self, picture: tuple[Figure, np.ndarray]) -> FigureImage:
        """Show a figure drawn by :func:`rendered` in place of what was there."""
        self.figure, rgba = picture
        image = FigureImage(rgba)
        self.layout().replaceWidget(self.content, image)
        self.content.deleteLater()
        self.content = image
        return image


class FigureWindow(QWidget):
    """A separate, resizable window with figures at full size and matplotlib's toolbar (zoom, pan, save)."""

    def __init__(self, figures: list[Figure], title: str, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT

        self.setWindowTitle(title)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        self.canvases = []
        for figure in figures:
            canvas = FigureCanvasQTAgg(figure)
            width_in, height_in = figure.get_size_inches()
            canvas.setMinimumSize(int(width_in * figure.dpi * 0.6), int(height_in * figure.dpi))
            layout.addWidget(NavigationToolbar2QT(canvas, holder))
            layout.addWidget(canvas)
            self.canvases.append(canvas)
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setWidget(holder)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(area)
        width_px = max(f.get_size_inches()[0] * f.dpi for f in figures)
        height_px = sum(f.get_size_inches()[1] * f.dpi for f in figures)
        self.resize(int(width_px) + 40, int(min(height_px + 80, 900)))


def as_list(figures) -> list[Figure]:
    from matplotlib.figure import Figure

    return [figures] if isinstance(figures, Figure) else list(figures)
