"""The image world: what image backends take and return (`base`), the registry that finds them by
name (`registry`) and the embedded exact concept space (`concept`: no weights, exact scores at
every noise level). Importing this package registers the built-in backends."""

from genmarket.mechanisms.backends.image.registry import (  # noqa: I001  (registry first)
    BACKENDS,
    get_backend,
    register_backend,
)
from genmarket.mechanisms.backends.image.base import ImageBackend, ImageWorld
from genmarket.mechanisms.backends.image import concept  # noqa: F401  (register the backends)

__all__ = ["BACKENDS", "ImageBackend", "ImageWorld", "get_backend", "register_backend"]
