"""The image world: what image backends take and return (`base`), the registry that finds them by
name (`registry`), the embedded exact concept space (`concept`: no weights, exact scores at
every noise level) and any local diffusers model (`diffusers`, with CLIP alignment from `clip`).
Importing this package registers the built-in backends (it does not import the diffusers
library: the diffusers backend imports it when one is built)."""

from genmarket.mechanisms.backends.image.registry import (  # noqa: I001  (registry first)
    BACKENDS,
    get_backend,
    register_backend,
)
from genmarket.mechanisms.backends.image.base import ImageBackend, ImageWorld
from genmarket.mechanisms.backends.image import concept  # noqa: F401  (register the backends)
from genmarket.mechanisms.backends.image.diffusers import DiffusersBackend

register_backend("diffusers")(DiffusersBackend)

__all__ = ["BACKENDS", "DiffusersBackend", "ImageBackend", "ImageWorld", "get_backend",
           "register_backend"]
