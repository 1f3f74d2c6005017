"""Which torch device a run uses."""

from __future__ import annotations

import torch

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(ValueError):
    """A device this machine does not have (a user's input error: the CLI exits with 2)."""


def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda[:k]` -> torch.device. Raises DeviceError, one line, when CUDA is asked for
    but absent or `k` is not one of this machine's CUDA devices."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device = {name!r}: CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use --device cpu"
        )
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.index is not None and device.index >= count:
        raise DeviceError(f"device = {name!r}: this machine has {count} CUDA device(s), "
                          f"cuda:0 to cuda:{count - 1}")
    return device
