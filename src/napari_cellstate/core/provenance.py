"""Which model made a result: a name and a hash of the model's weights.

The hash is taken over the weights themselves (names, shapes, dtypes and
values in a fixed order), so the same model gives the same hash whether it
came from a file, from memory or from a copy, and any other weights give
another.
"""

from __future__ import annotations

import hashlib

__all__ = ["EncoderMismatchError", "check_same_encoder", "model_provenance"]


class EncoderMismatchError(ValueError):
    """A head meets latents made by another encoder than the one it was trained on."""


def model_provenance(model, name: str) -> dict[str, str]:
    """``{"name": name, "sha256": <hash of the model's weights>}`` for a torch module."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes() if value.numel() else b"")
    return {"name": name, "sha256": digest.hexdigest()}


def check_same_encoder(trained_on: dict | None, latents_from: dict | None, *, head: str = "the head") -> None:
    """Refuse latents from another encoder than the one ``head`` was trained on (when both are known)."""
    if not trained_on or not latents_from or not trained_on.get("sha256") or not latents_from.get("sha256"):
        return
    if trained_on["sha256"] != latents_from["sha256"]:
        raise EncoderMismatchError(
            f"{head} was trained on latents of {trained_on.get('name', 'a β-TCVAE')} (weights "
            f"{trained_on['sha256'][:12]}), but the project's latents come from {latents_from.get('name', 'another')} "
            f"(weights {latents_from['sha256'][:12]}): its scores would mean nothing. Encode the project with the "
            "head's β-TCVAE, or train a head on the project's latents."
        )
