import numpy as np

from napari_cellstate.core.symbolic.data import informative_inputs


def _rows(n=800, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8))
    labels = (x[:, 0] + 0.8 * x[:, 5] - 0.6 * x[:, 2] > 0).astype(int)
    return x, labels


def test_extra_inputs_are_those_the_kept_ones_miss_and_never_noise():
    x, labels = _rows()
    chosen = informative_inputs(x, labels, np.ones(len(x), bool), [0], most=4)
    assert chosen[0] == 0
    assert set(chosen[1:]) == {5, 2}  # both informative latents, none of the five noise columns


def test_extra_inputs_are_chosen_on_training_rows_only():
    x, labels = _rows()
    train = np.arange(len(x)) < 600
    scrambled = labels.copy()
    scrambled[~train] = np.random.default_rng(1).permutation(labels[~train])  # test rows say something else
    assert informative_inputs(x, labels, train, [0]) == informative_inputs(x, scrambled, train, [0])
    chosen = informative_inputs(x, labels, train, [0], most=1)  # at most one more, an informative one
    assert chosen in ([0, 2], [0, 5])
