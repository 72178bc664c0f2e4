"""Which device training runs on: CUDA, Apple MPS or the CPU."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Devices this machine can train on, CPU first.

    Returns
    -------
    list of str
        ``"cpu"``, then ``"cuda:N"`` for each visible GPU, then ``"mps"`` on Apple silicon.

    Examples
    --------
    >>> available_devices()[0]
    'cpu'
    """
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def select_device(preference: str = "auto") -> torch.device:
    """The torch device to train on.

    Parameters
    ----------
    preference : str, default="auto"
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` (the
        current GPU), ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When the device is unknown or not available here; the message lists
        the available ones.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    """
    available = available_devices()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if "mps" in available else torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {preference!r}; available: auto, {', '.join(available)}.") from err
    if device.type == "cuda" and torch.cuda.is_available():
        index = torch.cuda.current_device() if device.index is None else device.index
        if index < torch.cuda.device_count():
            return torch.device("cuda", index)
    elif device.type == "cpu" or (device.type == "mps" and "mps" in available):
        return device
    raise ValueError(
        f"Device {preference!r} is not available on this machine; available: auto, {', '.join(available)}."
    )
