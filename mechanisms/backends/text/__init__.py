"""The language world: what text backends take and return (`base`), the embedded synthetic world
(`synthetic`: no weights, exact probabilities), any local transformers causal LM (`hf`, which
imports transformers only when used) and the `[language]` scenario section (`world`). Importing
this package registers the built-in backends."""

from genmarket.mechanisms.backends.text import hf, synthetic  # noqa: F401  (register the backends)
from genmarket.mechanisms.backends.text.base import (
    BACKENDS,
    AdvertiserProfile,
    Candidates,
    Query,
    TextBackend,
    TextWorld,
    get_backend,
    register_backend,
)

__all__ = [
    "BACKENDS",
    "AdvertiserProfile",
    "Candidates",
    "Query",
    "TextBackend",
    "TextWorld",
    "get_backend",
    "register_backend",
]
