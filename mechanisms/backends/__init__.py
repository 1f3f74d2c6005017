"""Language-model backends for the MOSAIC mechanism: an embedded synthetic world (no weights,
exact probabilities) and any local transformers causal LM. Importing this package registers
the built-in ones; `hf_text` imports transformers only when it is used."""

from genmarket.mechanisms.backends import hf_text, synthetic_text  # noqa: F401
from genmarket.mechanisms.backends.base import (
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
