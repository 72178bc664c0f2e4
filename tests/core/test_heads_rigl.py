"""RigL's invariants, the pruning steps, and sparse training end to end on synthetic latents."""

import numpy as np
import pytest
import torch

from napari_cellstate.core.config import HeadConfig, RigLConfig, SparsityDistribution, TrainConfig
from napari_cellstate.core.heads import MLPHead
from napari_cellstate.core.heads.fit import HeadTask, predict
from napari_cellstate.core.heads.prune import prune_head, prune_units
from napari_cellstate.core.heads.rigl import RigLSchedule, layer_counts
from napari_cellstate.core.training import train

SHAPES = [(16, 32), (16, 16), (16, 16), (1, 16)]


@pytest.mark.parametrize("distribution", list(SparsityDistribution))
@pytest.mark.parametrize("density", [0.01, 0.03, 0.2, 1.0])
def test_layer_counts_meet_the_budget_with_every_layer_connected(distribution, density):
    counts = layer_counts(SHAPES, density, distribution)
    sizes = [rows * cols for rows, cols in SHAPES]
    assert all(1 <= count <= size for count, size in zip(counts, sizes, strict=True))
    assert abs(sum(counts) - density * 1040) <= len(SHAPES)


class RecordingTask(HeadTask):
    """HeadTask whose hooks check RigL's invariants after every step."""

    def __init__(self, model, schedule, optimizer_log):
        super().__init__(model, 0.5, schedule)
        self.log = optimizer_log
        self.skipped: list[int] = []
        self.before: dict = {}

    def after_backward(self, step, total_steps, optimizer):
        self.before = {
            "masks": [m.clone() for m in self.model.masks],
            "weights": [layer.weight.detach().clone() for layer in self.model.layers],
        }
        skip = super().after_backward(step, total_steps, optimizer)
        if skip:
            self.skipped.append(step)
        return skip

    def after_optimizer_step(self, step, total_steps, optimizer):
        super().after_optimizer_step(step, total_steps, optimizer)
        self.log.append((step, self.model.active_weights(), self._outside_masks(optimizer)))
        if self.skipped and self.skipped[-1] == step:
            self._check_update(optimizer)

    def _outside_masks(self, optimizer) -> float:
        """Largest |weight| or Adam moment outside the masks."""
        worst = 0.0
        for layer, mask in zip(self.model.layers, self.model.masks, strict=True):
            outside = mask == 0
            worst = max(worst, float((layer.weight.detach() * outside).abs().max()))
            for value in optimizer.state.get(layer.weight, {}).values():
                if torch.is_tensor(value) and value.shape == mask.shape:
                    worst = max(worst, float((value * outside).abs().max()))
        return worst

    def _check_update(self, optimizer):
        update = self.rigl.updates[-1]
        for index, record in enumerate(update["layers"]):
            old_mask = self.before["masks"][index].flatten().bool()
            dropped, grown = set(record["dropped"]), set(record["grown"])
            assert not dropped & grown
            assert all(old_mask[i] for i in dropped)
            assert not any(old_mask[i] for i in grown)
            weight = self.model.layers[index].weight.detach().flatten()
            assert all(weight[i] == 0 for i in grown)  # grown weights start at zero
            kept = old_mask & self.model.masks[index].flatten().bool()
            # no optimizer step on update steps: surviving weights are unchanged
            torch.testing.assert_close(weight[kept], self.before["weights"][index].flatten()[kept])
            state = optimizer.state[self.model.layers[index].weight]
            for name in ("exp_avg", "exp_avg_sq"):
                assert all(state[name].flatten()[i] == 0 for i in grown)


def test_rigl_keeps_the_active_count_and_respects_masks(head_data):
    x = torch.as_tensor(head_data.latents)
    y = torch.as_tensor(head_data.labels, dtype=torch.float32)
    cfg = RigLConfig(density=0.05, update_every_steps=5, warmup_epochs=1)
    training = TrainConfig(epochs=6, batch_size=100, learning_rate=3e-3, seed=1, device="cpu")
    steps_per_epoch = -(-len(x) // training.batch_size)
    torch.manual_seed(0)
    head = MLPHead(HeadConfig())
    schedule = RigLSchedule(head, cfg, steps_per_epoch)
    log: list = []
    task = RecordingTask(head, schedule, log)
    train(task, torch.utils.data.TensorDataset(x, y), training)

    budget = sum(schedule.counts)
    sparse = [(step, active, outside) for step, active, outside in log if step > steps_per_epoch]
    assert [active for _, active, _ in log[:steps_per_epoch]] == [1040] * steps_per_epoch  # dense warm-up
    assert {active for _, active, _ in sparse} == {budget}
    assert max(outside for _, _, outside in sparse) == 0.0
    assert len(schedule.updates) >= 5
    assert task.skipped == [u["step"] for u in schedule.updates]
    assert any(layer["grown"] for update in schedule.updates for layer in update["layers"])
    fractions = [u["fraction"] for u in schedule.updates]
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[0] <= cfg.drop_fraction
    end = cfg.end_fraction * (len(log) - steps_per_epoch) + steps_per_epoch
    assert max(u["step"] for u in schedule.updates) <= end


def test_pruning_units_is_exact():
    torch.manual_seed(0)
    head = MLPHead(HeadConfig(n_inputs=4, hidden=(3, 3)))
    masks = [torch.zeros(3, 4), torch.zeros(3, 3), torch.ones(1, 3)]
    masks[0][0, 1] = masks[0][1, 2] = 1  # unit 2 of layer 0 has no input: a constant
    masks[1][0, 0] = masks[1][0, 2] = masks[1][1, 1] = 1  # hidden-0 unit 1 feeds layer-1 unit 1 only
    masks[1][2, 2] = 1  # layer-1 unit 2 is fed by the constant only
    head.set_masks(masks)
    with torch.no_grad():
        head.layers[0].bias.copy_(torch.tensor([0.1, -0.3, 0.7]))
    x = torch.randn(200, 4)
    before = head(x).detach()
    prune_units(head)
    torch.testing.assert_close(head(x).detach(), before, atol=1e-6, rtol=0)
    assert head.masks[0][2].sum() == 0
    assert head.masks[1][:, 2].sum() == 0
    assert head.active_weights() < 3 + 3 + 3 + 1  # the constant's edges are folded into biases


@pytest.mark.slow
def test_sparse_training_and_pruning_keep_held_out_predictions(head_data):
    from napari_cellstate.core.heads.fit import train_head

    training = TrainConfig(epochs=30, batch_size=128, learning_rate=3e-3, seed=0, device="cpu")
    result = train_head("sparse", head_data, rigl=RigLConfig(prune=False, update_every_steps=20), training=training)
    head = result.model
    test = head_data.rows("test")
    x_test = torch.as_tensor(head_data.latents[test])
    before = predict(head, x_test)
    _, val_rows = head_data.validation_split(0.1, seed=0)
    report = prune_head(head, torch.as_tensor(head_data.latents[val_rows]), torch.as_tensor(head_data.labels[val_rows]))
    after = predict(head, x_test)
    assert report.weights_after_units <= report.weights_before <= 32
    assert report.accuracy_after >= report.accuracy_before
    truth = head_data.labels[test].astype(bool)
    assert np.mean((before >= 0) == (after >= 0)) >= 0.95  # held-out classes barely change
    assert np.mean((after >= 0) == truth) >= np.mean((before >= 0) == truth) - 0.02
    # 1,500 realistic crops (docs/method.md) and at most 32 weights: about 0.90 here, 97 % on 8,000 crops (README)
    assert result.metrics["accuracy"] >= 0.87


def test_the_first_sparse_network_connects_every_kept_weight_to_the_output():
    from napari_cellstate.core.heads.analysis import head_graph
    from napari_cellstate.core.heads.rigl import sparsify_by_magnitude

    for seed in range(5):
        torch.manual_seed(seed)
        head = MLPHead(HeadConfig())
        counts = layer_counts(SHAPES, 0.03, SparsityDistribution.ERK)
        sparsify_by_magnitude(head, counts)
        assert [int(m.sum()) for m in head.masks] == counts
        graph = head_graph(head)
        assert graph.live_inputs  # some input reaches the output
        for later, earlier in zip(head.masks[1:], head.masks[:-1], strict=True):
            feeds_on = later.sum(dim=0) > 0
            assert bool(feeds_on[earlier.sum(dim=1) > 0].all())  # every unit fed by a kept weight feeds on
