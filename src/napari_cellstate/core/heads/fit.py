"""Train and evaluate the heads of Schemes 1-3 with the project's one training loop.

Labels are 1 for metaphase, 0 for interphase; a head's score f(x) >= 0 means metaphase. Mitosis is rare in a
movie, so the loss weights each class by half the inverse of its frequency in the training set (a balanced
objective), and evaluation reports the raw accuracy and the balanced accuracy (mean per-class recall).

Before training, a validation part is split off the training rows (grouped by cell, like the train/test split)
to score every epoch; the sparse head's pruning is judged on all training rows. The test rows are used for
nothing but the final figures.

Small labelled sets (a hundred cells) need the training to scale with them (:func:`default_training`): every
scheme gets a minimum number of optimisation steps whatever the data size (a fixed number of epochs over 80 cells
is a dozen steps), and weight decay. The dense head's weight decay grows as the set shrinks, like the L2 penalty
of the logistic-regression baseline it is compared with (:func:`head_weight_decay`): on 200 cells of 14 tracks a
head trained its full schedule with a fixed 1e-4 learnt the tracks, not the states.

Early stopping keeps the weights of the best validation epoch (highest balanced accuracy, the lower loss breaking
ties) and ends training when no epoch has been better for a quarter of the epochs. It is judged only where it can
be (:func:`fit_and_validation_rows`): a validation part with a handful of cells of a class (17 mitotic cells among
300 leave three to validate on) scores noise, and the class-weighted loss on three cells is lowest for a head that
has learnt nothing (a constant score near 0, which calls every cell metaphase or none). Such sets train the full
schedule on all their training rows. Neither is an epoch before the warm-up (:data:`WARMUP_SHARE` of the epochs)
ever kept: it would be a head that has barely started to learn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import CNNConfig, HeadConfig, HeadScheme, RigLConfig, TrainConfig
from ..progress import Progress, run_to_completion
from ..training import iter_train
from ._model import CNNClassifier, MLPHead
from .data import HeadData
from .prune import prune_head
from .rigl import RigLSchedule

__all__ = [
    "MIN_CNN_STEPS",
    "MIN_HEAD_STEPS",
    "HeadResult",
    "HeadTask",
    "default_training",
    "default_validation_fraction",
    "evaluate",
    "fit_and_validation_rows",
    "head_weight_decay",
    "iter_train_head",
    "predict",
    "train_head",
]


#: Fewest optimisation steps an MLP head gets by default: small labelled sets train for more epochs.
MIN_HEAD_STEPS = 2000
#: Fewest optimisation steps the CNN gets by default (6 epochs over 80 crops would be 12 steps).
MIN_CNN_STEPS = 400
#: Weight decay (Adam's L2) of the heads and of the CNN: small sets overfit without it.
HEAD_WEIGHT_DECAY = 1e-4
#: The dense head's weight decay is at least this over the rows it fits on (:func:`head_weight_decay`).
DENSE_L2_PER_ROW = 1.0
CNN_WEIGHT_DECAY = 1e-4
#: Fewest validation cells early stopping is judged on, when the training rows allow.
MIN_VALIDATION_CELLS = 20
#: Fewest validation cells of each class for early stopping; with fewer, training runs its full schedule.
MIN_VALIDATION_CELLS_PER_CLASS = 10
#: Early stopping waits this share of the epochs (at least :data:`MIN_PATIENCE_EPOCHS`) for a better epoch.
PATIENCE_SHARE = 0.25
MIN_PATIENCE_EPOCHS = 5
#: Share of the epochs trained before any epoch counts as the best one.
WARMUP_SHARE = 0.25


def default_training(scheme: HeadScheme | str, seed: int = 0, n_rows: int | None = None) -> TrainConfig:
    """Training settings that work for each scheme on a hundred to a few thousand cells (CPU-friendly).

    The number of epochs scales with ``n_rows`` (the rows trained on) so that every run takes at least
    :data:`MIN_HEAD_STEPS` (heads) or :data:`MIN_CNN_STEPS` (CNN) optimisation steps; the CNN's batch shrinks on
    small sets (a quarter of the rows, 16 to 64) so that an epoch is several steps.

    >>> default_training("dense", n_rows=300).epochs  # 3 steps per epoch: enough epochs for 2000 steps
    667
    >>> cnn = default_training("cnn", n_rows=80)  # batches of 20: 4 steps per epoch, 100 epochs
    >>> cnn.batch_size, cnn.epochs
    (20, 100)
    """
    if HeadScheme(scheme) is HeadScheme.CNN:
        batch_size = 64 if n_rows is None else int(min(64, max(16, n_rows // 4)))
        epochs = 6 if n_rows is None else max(6, math.ceil(MIN_CNN_STEPS / math.ceil(n_rows / batch_size)))
        return TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=1e-3,
            weight_decay=CNN_WEIGHT_DECAY,
            seed=seed,
            device="auto",
        )
    batch_size = 128
    epochs = 40 if n_rows is None else max(40, math.ceil(MIN_HEAD_STEPS / math.ceil(n_rows / batch_size)))
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=3e-3,
        weight_decay=head_weight_decay(scheme, n_rows),
        seed=seed,
        device="cpu",
    )


def head_weight_decay(scheme: HeadScheme | str, n_rows: int | None = None) -> float:
    """Weight decay of a head fitted on ``n_rows`` rows: 1e-4, and for the dense head at least 1 / ``n_rows``.

    The baseline, a logistic regression with L2 penalty C = 1
    (:func:`~napari_cellstate.core.heads.crossval.baseline_scores`), minimises the summed loss plus ½‖w‖²: on
    the mean loss the heads train on, that is a decay of 1/n per weight. The dense head gets the same prior, so
    it fits a thousand weights to a few hundred cells no more freely than the baseline fits 33; on thousands of
    cells it is about the old 1e-4. The sparse head's regularisation is its sparsity: its few weights lie on
    deep chains (input → three hidden units → output), and a decay that shrinks each link shrinks their product
    much more. 1/n would steady it on small sets (Drosophila's 14 tracks, 8 seeds: seed-to-seed spread 1.6-5.3 %
    against 8.3-8.4 % with 1e-4), but on 8,000 synthetic cells, where 1/n is already 1.5x the 1e-4, the sparse
    head scores about the same (Table 1 over 10 seeds: 96.2 ± 0.6 against 96.5 ± 0.8 %) while the formula
    Table 1 distils over its latents falls below 98 % of Scheme 2 (97.5 %).

    >>> head_weight_decay("dense", 250), head_weight_decay("dense", 8000), head_weight_decay("sparse", 250)
    (0.004, 0.000125, 0.0001)
    """
    if HeadScheme(scheme) is HeadScheme.DENSE and n_rows:
        return max(HEAD_WEIGHT_DECAY, DENSE_L2_PER_ROW / n_rows)
    return HEAD_WEIGHT_DECAY


def default_validation_fraction(n_train: int) -> float:
    """Share of the training rows held out for validation: 10 %, or more on small sets (at most 25 %).

    Small sets hold out enough rows for :data:`MIN_VALIDATION_CELLS` cells, so early stopping is not judged on a
    handful of cells.

    >>> default_validation_fraction(5000), default_validation_fraction(80)
    (0.1, 0.25)
    """
    return float(min(0.25, max(0.1, MIN_VALIDATION_CELLS / max(n_train, 1))))


def fit_and_validation_rows(
    data: HeadData, validation_fraction: float | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows to fit on and to validate on (grouped by cell), or all to fit on where validation cannot judge.

    The validation part is ``validation_fraction`` of the training cells (default
    :func:`default_validation_fraction`). When it would hold fewer than :data:`MIN_VALIDATION_CELLS_PER_CLASS`
    cells of a class, its accuracy and loss move by whole cells, and early stopping on it keeps a head picked by
    noise: then no rows are held out (the validation part is empty) and the head trains its full schedule.

    >>> rare = HeadData(np.r_[np.ones(15), np.zeros(285)].astype(np.int8), np.full(300, "train"), np.arange(300),
    ...                 np.zeros((300, 2), np.float32), None, ["a", "b"], "toy")
    >>> [len(rows) for rows in fit_and_validation_rows(rare)]  # 3 mitotic cells would validate: none held out
    [300, 0]
    """
    train = data.rows("train")
    if validation_fraction is None:
        validation_fraction = default_validation_fraction(len(train))
    fit_rows, val_rows = data.validation_split(validation_fraction, seed=seed)
    cells = [len(np.unique(data.groups[val_rows][data.labels[val_rows] == code])) for code in (0, 1)]
    if min(cells) < MIN_VALIDATION_CELLS_PER_CLASS:
        return train, train[:0]
    return fit_rows, val_rows


class _Rows(torch.utils.data.Dataset):
    """(inputs, label) pairs of in-memory arrays."""

    def __init__(self, inputs, labels: np.ndarray) -> None:
        self.inputs, self.labels = inputs.astype(np.float32, copy=False), labels.astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.as_tensor(self.inputs[index]), torch.tensor(self.labels[index])


class HeadTask:
    """Class-balanced binary cross-entropy on the head's score (a logit), with RigL hooks for sparse heads.

    Parameters
    ----------
    model : MLPHead or CNNClassifier
    metaphase_fraction : float
        Fraction of metaphase rows in the training set; each class gets half the total weight.
    rigl : RigLSchedule, optional
        Makes the head sparse (Scheme 3).
    validation : (Tensor, Tensor), optional
        Inputs and labels scored after each epoch (``val_accuracy``, ``val_balanced_accuracy``).
    augment : bool, default=False
        Turn and mirror each training crop at random (the 8 symmetries of the square): a cell's state does not
        depend on its orientation. Drawn from torch's global RNG, which the training loop seeds and checkpoints,
        so resuming stays exact. For crops (Scheme 1) only.
    """

    def __init__(
        self, model, metaphase_fraction: float, rigl: RigLSchedule | None = None, validation=None, augment=False
    ) -> None:
        self.model = model
        self.class_weights = torch.tensor([0.5 / (1 - metaphase_fraction), 0.5 / metaphase_fraction])
        self.rigl = rigl
        self.validation = validation
        self.augment = augment

    def after_backward(self, step: int, total_steps: int, optimizer) -> bool:
        """RigL's hook (sparse heads); True skips the optimizer step."""
        return self.rigl is not None and self.rigl.after_backward(step, total_steps, optimizer)

    def after_optimizer_step(self, step: int, total_steps: int, optimizer) -> None:
        """RigL's hook (sparse heads): re-apply the masks."""
        if self.rigl is not None:
            self.rigl.after_optimizer_step(step, total_steps, optimizer)

    def loss(self, batch, dataset_size: int):
        """Class-weighted BCE of one (inputs, labels) batch, and its accuracy."""
        x, y = batch
        if self.augment:
            x = _random_symmetry(x)
        score = self.model(x)
        return self._weighted_bce(score, y), {"accuracy": ((score >= 0) == y.bool()).float().mean()}

    def _weighted_bce(self, score, y):
        weights = self.class_weights.to(score.device)[y.long()]
        return (torch.nn.functional.binary_cross_entropy_with_logits(score, y, reduction="none") * weights).mean()

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Validation accuracies and (sparse heads) the active weight count."""
        metrics = {}
        if self.validation is not None:
            x, y = self.validation
            device = next(self.model.parameters()).device
            scores = _scores(self.model, x, device)
            metrics = {f"val_{k}": v for k, v in _accuracies(scores, y).items()}
            metrics["val_loss"] = self._weighted_bce(torch.as_tensor(scores), torch.as_tensor(y)).item()
        if self.rigl is not None:
            metrics["active_weights"] = float(_mlp(self.model).active_weights())
        return metrics


def _random_symmetry(crops: torch.Tensor) -> torch.Tensor:
    """Each (S, S) crop turned by a random multiple of 90° and mirrored at random.

    >>> crops = torch.arange(2 * 4 * 4.0).reshape(2, 4, 4)
    >>> out = _random_symmetry(crops)
    >>> bool(torch.equal(out.sum(dim=(1, 2)), crops.sum(dim=(1, 2))))  # the same pixels, moved
    True
    """
    turns = torch.randint(4, (len(crops),), device=crops.device)
    mirror = torch.randint(2, (len(crops),), device=crops.device).bool()
    out = torch.where(mirror[:, None, None], crops.flip(-1), crops)
    for k in (1, 2, 3):
        chosen = turns == k
        out[chosen] = torch.rot90(out[chosen], k, dims=(-2, -1))
    return out


def _mlp(model) -> MLPHead:
    return model.head if isinstance(model, CNNClassifier) else model


def _scores(model, inputs, device, batch_size: int = 1024) -> np.ndarray:
    out = []
    for start in range(0, len(inputs), batch_size):
        chunk = torch.tensor(np.asarray(inputs[start : start + batch_size]), dtype=torch.float32, device=device)
        out.append(model(chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _accuracies(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = scores >= 0
    truth = np.asarray(labels).astype(bool)
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in (False, True) if np.any(truth == c)]
    return {"accuracy": float(np.mean(predicted == truth)), "balanced_accuracy": float(np.mean(recalls))}


@torch.no_grad()
def predict(model, inputs, *, batch_size: int = 1024) -> np.ndarray:
    """Scores f(x) of a head (latents in) or a CNN classifier (crops in); >= 0 means metaphase."""
    was_training = model.training
    model.eval()
    try:
        return _scores(model, inputs, next(model.parameters()).device, batch_size)
    finally:
        model.train(was_training)


def evaluate(model, inputs, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and counts on labelled rows.

    >>> head = MLPHead(HeadConfig(n_inputs=2, hidden=(2,)))
    >>> sorted(evaluate(head, np.zeros((4, 2)), np.array([0, 0, 1, 1])))
    ['accuracy', 'balanced_accuracy', 'n', 'n_metaphase']
    """
    scores = predict(model, inputs)
    return {**_accuracies(scores, labels), "n": len(labels), "n_metaphase": int(np.sum(labels))}


@dataclass
class HeadResult:
    """A trained head and what is known about it.

    Attributes
    ----------
    model : MLPHead or CNNClassifier
        On the CPU, in eval mode.
    scheme : HeadScheme
    metrics : dict
        Test-set ``accuracy``, ``balanced_accuracy``, ``n``, ``n_metaphase``; ``active_weights``,
        ``expression_size`` and ``used_inputs`` (indices) of the head.
    history : list of dict
        The training loop's per-epoch entries (loss, accuracy, validation accuracy, active weights).
    card : dict
        Data, hyperparameters, metrics, history and input names for the model file.
    rigl_updates : list of dict
        RigL's connectivity updates (Scheme 3).
    """

    model: MLPHead | CNNClassifier
    scheme: HeadScheme
    metrics: dict
    history: list[dict]
    card: dict
    rigl_updates: list[dict] = field(default_factory=list)


def _build(scheme: HeadScheme, n_inputs: int, crop_size: int, head: HeadConfig | None, cnn: CNNConfig | None):
    head = head or HeadConfig(n_inputs=n_inputs)
    if scheme is HeadScheme.CNN:
        return CNNClassifier(cnn or CNNConfig(crop_size_px=crop_size), head)
    if head.n_inputs != n_inputs:
        raise ValueError(f"The head takes {head.n_inputs} inputs but the data has {n_inputs} latents per cell.")
    return MLPHead(head)


class _BestEpoch:
    """Early stopping: remembers the best validation epoch's weights and says when to stop.

    The best epoch has the highest validation balanced accuracy (the figure the heads are judged on; the
    class-weighted loss of a few rare cells swings with one confident mistake), the lower validation loss breaking
    ties. Epochs before ``warmup_epochs`` are never kept.
    """

    def __init__(self, model, warmup_epochs: int, patience_epochs: int) -> None:
        self.model, self.warmup, self.patience = model, warmup_epochs, patience_epochs
        self.best_key, self.best_epoch, self.state = (-math.inf, -math.inf), 0, None

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record an epoch's validation metrics; True when ``patience`` epochs have brought nothing better."""
        if epoch < self.warmup:
            return False
        key = (round(metrics["val_balanced_accuracy"], 6), -round(metrics["val_loss"], 6))
        if key > self.best_key:
            self.best_key, self.best_epoch = key, epoch
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Put the best epoch's weights (and sparsity masks) back."""
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _until_stale(steps, best: _BestEpoch | None) -> Generator[Progress, None, tuple[list[dict], int]]:
    """Run the training loop's events, stopping early when ``best`` says so; return the history and steps."""
    history, step = [], 0
    try:
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                return stop.value.history, stop.value.step
            yield event
            step = int(event.step)
            if event.kind == "epoch_end":
                history.append(dict(event.metrics))
                epoch = int(event.metrics["epoch"])
                if best is not None and "val_loss" in event.metrics and best.update(epoch, event.metrics):
                    yield Progress(step, step, f"early stop at epoch {epoch}: best validation epoch {best.best_epoch}")
                    return history, step
    finally:
        steps.close()


def iter_train_head(
    scheme: HeadScheme | str,
    data: HeadData,
    *,
    head: HeadConfig | None = None,
    cnn: CNNConfig | None = None,
    rigl: RigLConfig | None = None,
    training: TrainConfig | None = None,
    validation_fraction: float | None = None,
    early_stopping: bool = True,
    checkpoint_dir=None,
    resume: bool = False,
) -> Generator[Progress, None, HeadResult]:
    """Train one head of ``scheme`` on ``data``'s training rows and score it on its test rows.

    Parameters
    ----------
    scheme : HeadScheme or str
        ``"cnn"`` (Scheme 1, on crops), ``"dense"`` (Scheme 2) or ``"sparse"`` (Scheme 3, RigL), on latents.
    data : HeadData
        Inputs, labels and the train/test split (:func:`~napari_cellstate.core.heads.data.synthetic_head_data`,
        :func:`~napari_cellstate.core.heads.data.project_head_data`).
    head, cnn, rigl : optional
        Architecture and RigL settings (defaults: the 32-16-16-16-1 SiLU head, the default CNN, RigL at 3 %
        density with ERK, warm-up, and pruning).
    training : TrainConfig, optional
        Defaults to :func:`default_training`; the seed seeds the initial weights too.
    validation_fraction : float, optional
        Training rows (grouped by cell) held out to validate each epoch; default
        :func:`default_validation_fraction` (10 %, more on small sets). None are held out when the part would
        hold too few cells of a class (:func:`fit_and_validation_rows`).
    early_stopping : bool, default=True
        Keep the best validation epoch's weights after the warm-up, and stop when no epoch has been better for
        :data:`PATIENCE_SHARE` of the epochs (needs validation rows; dense heads and the CNN: a sparse head follows
        RigL's schedule to its end).

    Yields
    ------
    Progress
        The training loop's events, then one for pruning (Scheme 3).
    """
    scheme = HeadScheme(scheme)
    rigl = rigl or RigLConfig()
    data.check_trainable()
    inputs = data.inputs_for(scheme)
    seed = training.seed if training is not None else 0
    if validation_fraction is None:
        validation_fraction = default_validation_fraction(len(data.rows("train")))
    fit_rows, val_rows = fit_and_validation_rows(data, validation_fraction, seed)
    training = training or default_training(scheme, seed, len(fit_rows))
    test_rows = data.rows("test")
    labels = data.labels.astype(np.float32)

    with torch.random.fork_rng():
        torch.manual_seed(training.seed)
        model = _build(scheme, data.n_latents, data.crop_size, head, cnn)
    mlp = _mlp(model)
    val_x = np.asarray(inputs[val_rows], dtype=np.float32) if len(val_rows) else None
    validation = (val_x, labels[val_rows]) if val_x is not None else None
    steps_per_epoch = -(-len(fit_rows) // training.batch_size)
    schedule = RigLSchedule(mlp, rigl, steps_per_epoch) if scheme is HeadScheme.SPARSE else None
    task = HeadTask(model, float(labels[fit_rows].mean()), schedule, validation, scheme is HeadScheme.CNN)
    started = time.perf_counter()
    dataset = _Rows(inputs[fit_rows], labels[fit_rows])
    patience = max(MIN_PATIENCE_EPOCHS, math.ceil(PATIENCE_SHARE * training.epochs))
    # a sparse head's length is RigL's schedule (dense warm-up, then drop/grow until T_end): an earlier epoch's
    # weights are a denser, unfinished network, so only dense heads and the CNN stop early
    stops_early = early_stopping and validation is not None and scheme is not HeadScheme.SPARSE
    warmup = math.ceil(WARMUP_SHARE * training.epochs)
    best = _BestEpoch(model, warmup, patience) if stops_early else None
    steps = iter_train(task, dataset, training, checkpoint_dir=checkpoint_dir, resume=resume)
    history, step = yield from _until_stale(steps, best)
    if best is not None:
        best.restore()
    model.cpu().eval()

    prune_report = None
    if schedule is not None and rigl.prune:
        # judged on all training rows: a small validation part (a few mitotic cells) would let pruning cut
        # connections that set the decision threshold; removing connections cannot overfit
        yield Progress(step, step, "pruning the sparse head")
        train_rows = data.rows("train")
        prune_x, prune_y = torch.as_tensor(inputs[train_rows]), torch.as_tensor(labels[train_rows])
        prune_report = prune_head(mlp, prune_x, prune_y, rigl.prune_tolerance).as_dict()

    from .analysis import expression_size

    metrics = {
        **evaluate(model, inputs[test_rows], labels[test_rows]),
        "active_weights": mlp.active_weights(),
        "expression_size": expression_size(mlp),
        "used_inputs": mlp.used_inputs() if scheme is not HeadScheme.CNN else list(range(mlp.cfg.n_inputs)),
    }
    card = {
        "scheme": scheme.value,
        "input_names": data.input_names if scheme is not HeadScheme.CNN else None,
        "data": data.describe(),
        "hyperparameters": {
            "head": mlp.cfg.model_dump(mode="json"),
            "cnn": model.cfg.model_dump(mode="json") if scheme is HeadScheme.CNN else None,
            "rigl": rigl.model_dump(mode="json") if scheme is HeadScheme.SPARSE else None,
            "training": training.model_dump(mode="json"),
            "validation_fraction": validation_fraction if len(val_rows) else 0.0,
            "early_stopping": None
            if best is None
            else {"warmup_epochs": warmup, "patience_epochs": patience, "best_epoch": best.best_epoch},
        },
        "metrics": {**metrics, "prune": prune_report},
        "history": history,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    updates = schedule.updates if schedule is not None else []
    return HeadResult(model=model, scheme=scheme, metrics=metrics, history=history, card=card, rigl_updates=updates)


def train_head(scheme: HeadScheme | str, data: HeadData, **kwargs) -> HeadResult:
    """Blocking :func:`iter_train_head`."""
    return run_to_completion(iter_train_head(scheme, data, **kwargs))
