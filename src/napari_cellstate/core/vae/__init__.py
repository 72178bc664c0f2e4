"""β-TCVAE: the network, its loss and its model files (torch is imported by this subpackage)."""

from ..model_files import FORMAT, FORMAT_VERSION, ModelFileError, model_paths
from ._files import check_crop_size, load_vae, save_vae
from ._loss import beta_tcvae_loss, estimate_log_qz, gaussian_log_density, log_importance_weights, log_qz_matrix
from ._model import BetaTCVAE

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BetaTCVAE",
    "ModelFileError",
    "beta_tcvae_loss",
    "check_crop_size",
    "estimate_log_qz",
    "gaussian_log_density",
    "load_vae",
    "log_importance_weights",
    "log_qz_matrix",
    "model_paths",
    "save_vae",
]
