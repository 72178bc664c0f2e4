"""Track & crop: segment (or take a Labels layer), track with btrack, cut crops."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ...core.config import CropConfig, SegmentationConfig, ThresholdMethod, TrackingConfig
from .._layers import (
    CELLS_LAYER,
    CROP_LAYER,
    LABELS_LAYER,
    cells_layer,
    is_cells_layer,
    labels_layer,
    set_legend,
    show_beside,
    tracks_layer,
    update_layer,
)
from .._project import ProjectField, project_state
from .._workers import LatestCall, RunPanel

if TYPE_CHECKING:
    from ...core.pipeline import TrackAndCropResult

SEGMENT_CHOICE = "(segment the movie)"


class TrackCropWidget(QWidget):
    """Choose a movie (and optionally its Labels), set a few parameters, Run."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: TrackAndCropResult | None = None
        self.crop_reader = LatestCall()  # the selected cell's crop, read from the project off the GUI thread
        self.image = ComboBox(label="movie", choices=self._image_choices)
        self.labels = ComboBox(label="labels", choices=self._labels_choices)
        self.pixel_size_um = FloatSpinBox(label="pixel size (µm)", value=0.33, min=0.01, max=100, step=0.01)
        self.threshold = ComboBox(label="threshold", choices=[m.value for m in ThresholdMethod], value="otsu")
        self.threshold_scale = FloatSpinBox(label="threshold scale", value=1.0, min=0.1, max=5, step=0.05)
        self.min_separation_um = FloatSpinBox(label="min separation (µm)", value=5.0, min=0.5, max=100)
        self.max_search_radius_um = FloatSpinBox(
            label="max move / frame (µm)",
            value=0.0,
            min=0.0,
            max=500,
            tooltip="How far a cell may move between frames; 0: 1.5 nucleus diameters, measured on the movie.",
        )
        self.crop_size = SpinBox(label="crop size (px)", value=64, min=8, max=512, step=2)
        self.project = ProjectField(project_state(napari_viewer))
        self.form = Container(
            widgets=[
                self.image,
                self.labels,
                self.pixel_size_um,
                self.threshold,
                self.threshold_scale,
                self.min_separation_um,
                self.max_search_radius_um,
                self.crop_size,
            ]
        )
        self.panel = RunPanel("Track && crop")
        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        layout.addWidget(self.form.native)
        layout.addWidget(self.panel)
        layout.addStretch()
        self.panel.run_button.clicked.connect(self.run)
        self.image.changed.connect(self._guess_pixel_size)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)
        self._guess_pixel_size()

    def _image_choices(self, _widget=None) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]

    def _labels_choices(self, _widget=None) -> list[str]:
        return [SEGMENT_CHOICE] + [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, napari.layers.Labels) and layer.name != LABELS_LAYER
        ]

    def _refresh_choices(self, _event=None) -> None:
        self.image.reset_choices()
        self.labels.reset_choices()

    def _guess_pixel_size(self, _value=None) -> None:
        if self.image.value and self.image.value in self.viewer.layers:
            scale = self.viewer.layers[self.image.value].scale[-1]
            if scale != 1:
                self.pixel_size_um.value = float(scale)

    def configs(self) -> tuple[SegmentationConfig, TrackingConfig, CropConfig]:
        """The settings shown in the widget as core configs."""
        px = self.pixel_size_um.value
        segmentation = SegmentationConfig(
            pixel_size_um=px,
            threshold=self.threshold.value,
            threshold_scale=self.threshold_scale.value,
            min_separation_um=self.min_separation_um.value,
        )
        tracking = TrackingConfig(max_search_radius_um=self.max_search_radius_um.value or None)
        crops = CropConfig(size_px=int(self.crop_size.value))
        return segmentation, tracking, crops

    def run(self) -> None:
        """Start the work in a thread; layers are added when it returns."""
        if not self.image.value:
            self.panel.fail("Open a movie first (File > Open, or the sample in the CellState panel).")
            return
        if not self.project.value:
            self.panel.fail("Choose a project folder first (Project…): the cells and crops are saved there.")
            return
        layer = self.viewer.layers[self.image.value]
        labels = None
        if self.labels.value and self.labels.value != SEGMENT_CHOICE:
            labels = self.viewer.layers[self.labels.value].data
        segmentation, tracking, crops = self.configs()
        self.panel.start(
            _iter_track_and_layers,
            self._show,
            layer.data,
            pixel_size_um=self.pixel_size_um.value,
            labels=labels,
            segmentation=segmentation,
            tracking=tracking,
            crops=crops,
            project=self.project.value or None,
            source=layer.name,
            rgb=layer.rgb,
            movie_origin=movie_origin(layer),
        )

    def _show(self, returned: tuple[TrackAndCropResult, list]) -> Generator[None, None, None]:
        result, layers = returned
        self.result = result
        yield from show_project_layers(self.viewer, layers)
        self.viewer.layers[CELLS_LAYER].selected_data.events.items_changed.connect(self._show_selected_crop)
        yield
        n_tracks = result.objects["track_id"].nunique()
        self.panel.done(
            f"{len(result.objects)} cells in {n_tracks} tracks, {len(result.graph)} daughters; "
            f"{0 if result.crops is None else len(result.crops.crops)} crops saved to {self.project.value}"
        )

    def _show_selected_crop(self, _event=None) -> None:
        cells = self.viewer.layers[CELLS_LAYER]
        if self.result is None or self.result.crops is None or not cells.selected_data:
            return
        index = int(sorted(cells.selected_data)[-1])
        self.crop_reader.submit(lambda: np.asarray(self.result.crops.crops[index]), self._show_crop_of(index))

    def _show_crop_of(self, index: int):
        def show(crop: np.ndarray) -> None:
            layer = show_beside(self.viewer, crop, CROP_LAYER, self.pixel_size_um.value)
            layer.reset_contrast_limits()
            row = self.result.objects.iloc[index]
            self.panel.status.setText(f"selected crop: track {row['track_id']}, frame {row['t']}")

        return show


def _iter_track_and_layers(movie, **kwargs) -> Generator:
    """Track and crop, then make the layer data tuples (in the worker): the GUI thread only adds them."""
    from ...core.pipeline import iter_track_and_crop

    result = yield from iter_track_and_crop(movie, **kwargs)
    px = kwargs["pixel_size_um"]
    return result, [
        labels_layer(result.labels, result.objects, px),
        tracks_layer(result.objects, result.graph, px),
        cells_layer(result.objects, px),
    ]


def movie_origin(layer) -> dict:
    """Where a movie layer came from, for the project to bring it back: its file, or the simulator's settings."""
    if layer.metadata.get("cellstate_simulation"):
        return {"simulation": layer.metadata["cellstate_simulation"]}
    path = getattr(layer.source, "path", None)
    return {"path": str(path)} if path else {}


def show_project_layers(viewer, layers) -> Generator[None, None, None]:
    """Replace the project's layers (same names) with these, hide other rings, keep the cells layer active.

    Points layers of rings without cell ids (e.g. the sample's true states) are hidden, so each cell has one ring. A
    generator, pausing after each layer (see :meth:`RunPanel.start`): napari draws between layers.
    """
    for data, kwargs, kind in layers:
        name = kwargs["name"]
        if name in viewer.layers and viewer.layers[name]._type_string == kind:
            update_layer(viewer.layers[name], data, kwargs)
        else:
            if name in viewer.layers:
                viewer.layers.remove(name)
                yield
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        yield
    for layer in viewer.layers:
        rings = isinstance(layer, napari.layers.Points) and np.max(layer.size, initial=0) > 0  # not text labels
        if rings and not is_cells_layer(layer) and layer.visible:
            layer.visible = False
            yield
    cells = next((layer for layer in reversed(viewer.layers) if is_cells_layer(layer)), None)
    if cells is not None:
        viewer.layers.selection.active = cells  # napari rebuilds the layer controls: a turn of its own
        yield
        set_legend(viewer)
