"""The image backends a scenario can name: a registry like the text world's, filled when
`genmarket.mechanisms.backends.image` is imported, with the "genmarket.image_backends"
entry-point group as the fallback for plug-ins."""

from __future__ import annotations

from genmarket.market.registry import Registry
from genmarket.mechanisms.backends.image.base import ImageBackend, ImageWorld

__all__ = ["BACKENDS", "get_backend", "register_backend"]

ENTRY_POINT_GROUP = "genmarket.image_backends"

BACKENDS: Registry = Registry(
    "image backend", ENTRY_POINT_GROUP,
    on_register=lambda name, cls: setattr(cls, "backend_name", name))


def register_backend(name: str):
    """Decorator: register an image backend class (or factory) under `name`; the scenario
    names it."""
    return BACKENDS.register(name)


def get_backend(name: str, world: ImageWorld, **params) -> ImageBackend:
    """Build image backend `name` for `world` with keyword settings `params` (device, dtype,
    ...). Built-in names are registered when `genmarket.mechanisms.backends.image` is imported;
    others come from the "genmarket.image_backends" entry-point group. Unknown names raise
    ValueError listing the known ones."""
    return BACKENDS.lookup(name)(world, **params)
