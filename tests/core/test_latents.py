import numpy as np
import pandas as pd
import pytest

from napari_cellstate.core.vae.naming import best_pairs, latent_names, mutual_information_gap, name_latents


@pytest.fixture
def factors():
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame(
        {
            "area": rng.uniform(100, 900, n),
            "eccentricity": rng.uniform(0.1, 0.95, n),
            "orientation": rng.uniform(-np.pi / 2, np.pi / 2, n),
            "neighbour_count": rng.integers(0, 6, n),
        }
    )


def _code(f, noise=0.1, seed=1):
    """A disentangled code: area in z0, eccentricity as (e cos 2θ, e sin 2θ) in z1, z2, neighbours in z3."""
    rng = np.random.default_rng(seed)
    e, theta = f["eccentricity"].to_numpy(), f["orientation"].to_numpy()
    z = np.stack(
        [
            (f["area"] - 500) / 230,
            2 * e * np.cos(2 * theta),
            2 * e * np.sin(2 * theta),
            (f["neighbour_count"] - 2.5) / 1.7,
            np.zeros(len(f)),
        ],
        axis=1,
    )
    return z + rng.normal(0, noise, z.shape)


def test_latents_are_named_after_what_they_encode(factors):
    named = name_latents(_code(factors), factors)
    assert named.loc[0, "best_match"] == "area"
    assert named.loc[0, "r"] > 0.95
    assert named.loc[3, "best_match"] == "neighbour_count"
    assert abs(named.loc[4, "r"]) < 0.1
    labels = latent_names(named)
    assert labels[0].startswith("z0 ↔ area, r = ")
    assert labels[4] == "z4"


def test_eccentricity_is_found_in_a_pair_of_latents(factors):
    pairs = best_pairs(_code(factors), factors, "eccentricity")
    assert pairs.loc[0, "pair"] == "z1, z2"
    assert pairs.loc[0, "r_radius"] > 0.9
    assert pairs.loc[0, "r_angle"] > 0.9


def test_mig_is_high_for_a_disentangled_code_and_low_for_a_mixed_one(factors):
    z = _code(factors)[:, [0, 3, 4]]
    f = factors[["area", "neighbour_count"]]
    disentangled, per_factor = mutual_information_gap(z, f)
    rotation = np.array([[0.7071, 0.7071, 0], [-0.7071, 0.7071, 0], [0, 0, 1]])
    mixed, _ = mutual_information_gap(z @ rotation, f)
    assert disentangled > 0.5
    assert mixed < 0.2
    assert set(per_factor["best_latent"]) == {"z0", "z1"}


def test_mismatched_lengths_are_refused(factors):
    with pytest.raises(ValueError, match="latent vectors but"):
        name_latents(np.zeros((3, 2)), factors)
    with pytest.raises(ValueError, match="none of the columns"):
        name_latents(np.zeros((len(factors), 2)), factors[[]])
