"""Attacks & audit: attack chosen cells with one head, see the perturbations on the movie, audit every head.

A thin widget: it gathers the project, head, cells, space, ε (or the minimal search) and frozen latents, runs
:func:`~napari_cellstate.core.attacks.project.iter_attack_project` or
:func:`~napari_cellstate.core.attacks.project.iter_audit_heads` in a worker with progress and Cancel, and turns
the results into layers (:mod:`napari_cellstate.gui._attack_layers`), a gallery, the audit table and the flip
rate plot. The cells layer (the per-cell class overlay) is kept on top so it stays visible while attacking.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit
from qtpy.QtWidgets import QLabel, QListWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ...core.progress import Progress
from .._figures import FigureSlot, rendered
from .._layers import CELLS_LAYER, update_layer
from .._project import ProjectField, project_state
from .._workers import LatestCall, RunPanel

ATTACKS_FOLDER = "attacks"

SELECTIONS = ("cells selected on the movie", "cells classified metaphase", "cells classified interphase", "all cells")
MAX_LAYERS = 20  # perturbation layers added per attack; the gallery and saved results hold every cell


class AttackAuditWidget(QWidget):
    """Attack cells and audit heads (Schemes 1-4) of a project."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = ProjectField(project_state(napari_viewer))
        self.head = ComboBox(label="head", choices=[])
        self.head.tooltip = "A head saved in the project's heads/ folder (the Heads step saves them as it trains)"
        self.cells = ComboBox(label="attack", choices=SELECTIONS)
        self.space = ComboBox(label="space", choices=["image", "latent"], value="image")
        self.epsilon = FloatSpinBox(label="ε", value=0.5, min=0.01, max=4.0, step=0.05)
        self.method = ComboBox(label="method", choices=["fgsm", "pgd"], value="fgsm")
        self.method.tooltip = "FGSM: one step of size ε (the paper's); PGD: several projected steps within ε (stronger)"
        self.minimal = CheckBox(text="minimal ε that flips each cell")
        self.freeze = LineEdit(label="frozen latents", value="")
        self.freeze.tooltip = "latent attacks: latents held fixed, e.g. z3 z17 z21 z29 (the paper's central ones)"
        self.space.changed.connect(lambda space: setattr(self.epsilon, "value", 0.5 if space == "image" else 1.0))
        form = Container(
            widgets=[self.head, self.cells, self.space, self.method, self.epsilon, self.minimal, self.freeze]
        )
        self.attack_panel = RunPanel("Attack")
        self.saved = QListWidget()
        self.saved.setMaximumHeight(90)
        self.saved.setToolTip("Attacks saved in the project's attacks/ folder; double-click one to show its maps.")
        self.saved.itemDoubleClicked.connect(lambda item: self.show_saved(item.text()))
        self.audit_panel = RunPanel("Audit heads")
        self.table = QTableWidget(0, 0)  # its columns come with the audit (core.attacks.audit.AUDIT_COLUMNS)
        self.canvas = FigureSlot()  # figures drawn in the worker, shown at the dock's width
        self.gallery = FigureSlot()
        layout = QVBoxLayout(self)
        layout.addWidget(self.project)
        layout.addWidget(form.native)
        layout.addWidget(self.attack_panel)
        layout.addWidget(QLabel("Attacks in this project"))
        layout.addWidget(self.saved)
        layout.addWidget(self.gallery)
        layout.addWidget(QLabel("Domain audit of every saved head (test cells)"))
        layout.addWidget(self.audit_panel)
        layout.addWidget(self.table)
        layout.addWidget(self.canvas)
        self.attack_panel.run_button.clicked.connect(self.run_attack)
        self.audit_panel.run_button.clicked.connect(self.run_audit)
        self.project.state.changed.connect(lambda _p: self.refresh())
        self.last_result = None
        self.lister = LatestCall()  # the project's heads and attacks, listed off the GUI thread
        self.refresh()

    def refresh(self) -> None:
        """Offer the project's saved heads and list its saved attacks (read in a worker; see ``lister.busy``)."""
        if self.project.value:
            self.lister.submit(_saved_heads_and_attacks, self._listed, self.project.value)
        else:
            self._listed(([], []))

    def _listed(self, listed: tuple[list[str], list[str]]) -> None:
        heads, attacks = listed
        kept = self.head.value if self.head.value in heads else None
        self.head.choices = heads
        if kept is not None:
            self.head.value = kept
        self.saved.clear()
        self.saved.addItems(attacks)

    def show_saved(self, name: str) -> None:
        """Show a saved attack's maps over its cells (read in a worker)."""
        folder = Path(self.project.value) / ATTACKS_FOLDER / name
        self.attack_panel.start(_iter_call, self.show_attack, _load_and_draw, folder)

    def _selection(self) -> dict:
        choice = self.cells.value
        if choice == SELECTIONS[0]:
            layer = self.viewer.layers[CELLS_LAYER] if CELLS_LAYER in self.viewer.layers else None  # noqa: SIM401
            chosen = sorted(layer.selected_data) if layer is not None else []
            if not chosen:
                raise ValueError(
                    "No cell is selected: select cells on the 'cellstate cells' layer (or attack a class)."
                )
            return {"cell_ids": layer.features["object_id"].iloc[chosen].astype(int).tolist()}
        if choice == SELECTIONS[3]:
            return {}
        return {"predicted_class": choice.split()[-1]}

    def attack_request(self) -> dict:
        """The core call's arguments, from the fields."""
        from ..._cli_attacks import _latent_indices

        if not self.project.value or not self.head.value:
            raise ValueError("Choose a project with a saved head first: train one in the Heads step.")
        return {
            "project": Path(self.project.value),
            "head": self.head.value,
            **self._selection(),
            "space": self.space.value,
            "epsilon": None if self.minimal.value else float(self.epsilon.value),
            "method": attack_method(self.method.value, minimal=self.minimal.value),
            "frozen": _latent_indices(self.freeze.value.replace(",", " ").split()),
        }

    def run_attack(self):
        """Attack the chosen cells in a worker and save the result in the project; layers appear when done."""
        try:
            request = self.attack_request()
        except ValueError as err:
            self.attack_panel._show_error(err)
            return None
        project, head = request.pop("project"), request.pop("head")
        name = attack_name(head, request)
        return self.attack_panel.start(
            _iter_attack_and_save, self._attacked, project, head, project / ATTACKS_FOLDER / name, request
        )

    def _attacked(self, returned) -> None:
        self.show_attack(returned)
        self.refresh()

    def show_attack(self, returned) -> None:
        """Perturbation layers over the attacked cells, the gallery, the cells layer kept on top.

        ``returned`` is :func:`drawn_attack`'s (result, layers, gallery), made in the worker.
        """
        result, layers, gallery = returned
        self.last_result = result
        for data, kwargs, _ in layers:
            if kwargs["name"] in self.viewer.layers:
                update_layer(self.viewer.layers[kwargs["name"]], data, kwargs)
            else:
                self.viewer.add_image(data, **kwargs)
        if CELLS_LAYER in self.viewer.layers:
            cells = self.viewer.layers[CELLS_LAYER]
            self.viewer.layers.move(self.viewer.layers.index(cells), len(self.viewer.layers))
            cells.visible = True
            self.viewer.layers.selection.active = cells  # keys and clicks keep going to the cells
        self.gallery.set_picture(gallery)
        self.attack_panel.done(
            f"flip rate {result.flip_rate:.2f} over {len(result.cells)} cells (Scheme {result.scheme}, {result.space})"
        )

    def run_audit(self):
        """Audit every head of the heads folder in a worker."""
        if not self.project.value:
            self.audit_panel.fail("Choose a project with saved heads first: train them in the Heads step.")
            return None
        return self.audit_panel.start(_iter_audit_and_draw, self.show_audit, Path(self.project.value))

    def show_audit(self, returned) -> None:
        """Fill the audit table (one row per head) and show the flip rate against ε (drawn in the worker)."""
        rows, _curves, _, picture, columns = returned
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(list(columns))
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                value = row.get(key)
                text = (
                    "—"
                    if value is None
                    else f"{value:.3f}"
                    if isinstance(value, float)
                    else " / ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value)
                    if isinstance(value, list)
                    else str(value)
                )
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.canvas.set_picture(picture)


def attack_method(method: str, *, minimal: bool) -> str:
    """The core's method name: ``method`` ("fgsm" or "pgd"), or its minimal-ε search.

    >>> attack_method("pgd", minimal=True), attack_method("fgsm", minimal=True), attack_method("pgd", minimal=False)
    ('minimal_pgd', 'minimal', 'pgd')
    """
    if not minimal:
        return method
    return "minimal_pgd" if method == "pgd" else "minimal"


def attack_name(head: str, request: dict) -> str:
    """A folder name saying what was attacked: head, space, method (FGSM unsaid), ε (or minimal), frozen latents.

    >>> attack_name("scheme3_sparse_seed0", {"space": "latent", "epsilon": 1.0, "frozen": [3, 17]})
    'scheme3_sparse_seed0-latent-eps1-frozen3_17'
    >>> attack_name("symbolic", {"space": "image", "epsilon": None, "method": "minimal_pgd", "frozen": []})
    'symbolic-image-pgd-minimal'
    """
    pgd = "-pgd" if request.get("method", "fgsm") in ("pgd", "minimal_pgd") else ""
    epsilon = "minimal" if request.get("epsilon") is None else f"eps{request['epsilon']:g}"
    frozen = "-frozen" + "_".join(str(j) for j in request["frozen"]) if request.get("frozen") else ""
    return f"{head}-{request['space']}{pgd}-{epsilon}{frozen}"


def _saved_heads_and_attacks(project: str) -> tuple[list[str], list[str]]:
    """The names of the project's saved heads (newest first) and of its saved attacks (in a worker)."""
    folder = Path(project) / ATTACKS_FOLDER
    attacks = sorted(p.name for p in folder.iterdir() if (p / "attack.json").exists()) if folder.is_dir() else []
    formulas = _saved_formulas(project)
    if not any(Path(project).glob("heads/*.safetensors")):  # none: torch need not load (its load stalls napari)
        return formulas, attacks
    from ...core.heads.session import saved_heads

    return [card.stem for card in saved_heads(project)] + formulas, attacks


def _saved_formulas(project: str) -> list[str]:
    """The names of Scheme 4 formulas saved among the project's heads (cards without weights beside them)."""
    cards = [card for card in Path(project).glob("heads/*.json") if not card.with_suffix(".safetensors").exists()]
    cards.sort()
    if not cards:  # nothing to check: the formula code (torch, sympy) need not load
        return []
    from ...core.symbolic.files import is_expression_card

    return [card.stem for card in cards if is_expression_card(card)]


def _iter_attack_and_save(project: Path, head: str, folder: Path, request: dict) -> Generator[Progress, None, tuple]:
    """Attack with the saved head named ``head``, then save the result in the project (it comes back on reopening)."""
    from ...core.attacks.project import iter_attack_project
    from ...core.attacks.results import save_attack_result
    from ...core.heads.session import HEADS_FOLDER

    head_path = project / HEADS_FOLDER / f"{head}.json"  # a head's card or a saved formula's
    result, geometry = yield from iter_attack_project(project, head_path, **request)
    save_attack_result(folder, result, geometry)
    return drawn_attack(result, geometry)


def drawn_attack(result, geometry: dict) -> tuple:
    """(result, its perturbation layers, its gallery drawn): what :meth:`AttackAuditWidget.show_attack` shows.

    Made in a worker: the maps, their placement and the gallery need the attacks' torch and matplotlib code.
    """
    from ...core.attacks.figures import gallery_figure
    from .._attack_layers import perturbation_layer

    layers = [perturbation_layer(result, row, geometry) for row in range(min(len(result.cells), MAX_LAYERS))]
    return result, layers, rendered(gallery_figure(result))


def _load_and_draw(folder: Path) -> tuple:
    from ...core.attacks.results import load_attack_result

    result, summary = load_attack_result(folder)
    return drawn_attack(result, summary.get("geometry") or {})


def _iter_audit_and_draw(project: Path) -> Generator[Progress, None, tuple]:
    """Audit the project's saved heads, then draw the flip rate against ε (in the worker)."""
    from ..._cli_attacks import find_heads
    from ...core.attacks.audit import AUDIT_COLUMNS
    from ...core.attacks.figures import flip_rate_figure
    from ...core.attacks.project import iter_audit_heads
    from ...core.heads.session import HEADS_FOLDER

    returned = yield from iter_audit_heads(project, find_heads(project / HEADS_FOLDER))
    return (*returned, rendered(flip_rate_figure(returned[1])), AUDIT_COLUMNS)


def _iter_call(function, *args) -> Generator[Progress, None, object]:
    """A plain call as a one-step job (to read files off the GUI thread)."""
    yield Progress(0, 1, "reading ...")
    return function(*args)
