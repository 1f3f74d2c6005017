"""Which torch device a run uses."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda[:k]` -> torch.device; a clear error when CUDA is asked for but absent."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device = {name!r}: CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use --device cpu"
        )
    return device
