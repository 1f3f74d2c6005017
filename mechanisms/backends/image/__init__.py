"""The image world: what image backends take and return (`base`) and the registry of image
backends. Importing this package registers the built-in backends."""

from genmarket.market.registry import Registry
from genmarket.mechanisms.backends.image.base import ImageBackend, ImageWorld
from genmarket.mechanisms.backends.image.diffusers import DiffusersBackend

__all__ = ["BACKENDS", "DiffusersBackend", "ImageBackend", "ImageWorld", "get_backend", "register_backend"]

BACKENDS: Registry = Registry(
    "image backend", "genmarket.image_backends",
    on_register=lambda name, cls: setattr(cls, "backend_name", name))


def register_backend(name: str):
    """Decorator: register an image backend class (or factory) under `name`."""
    return BACKENDS.register(name)


def get_backend(name: str, world: ImageWorld, **params) -> ImageBackend:
    """Build image backend `name` for `world` with keyword settings `params`. Unknown names
    raise ValueError listing the known ones."""
    return BACKENDS.lookup(name)(world, **params)


register_backend("diffusers")(DiffusersBackend)
