"""Keeping the libraries' noise out of a run's log: transformers' warnings and progress bars
("Loading weights", the GGUF conversion bar, deprecation notices), silenced only while the
backend loads or runs its model, and restored afterwards, so the user's own use of transformers
in the same process is left as it was."""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import warnings
from collections.abc import Iterator

__all__ = ["quiet_transformers", "quietly"]


@contextlib.contextmanager
def quiet_transformers(gguf: bool = False) -> Iterator[None]:
    """Within the block: transformers logs errors only, its progress bars are off, Python
    warnings are ignored, and with `gguf` the GGUF conversion's own tqdm bar is disabled too.
    Everything is put back on leaving (also on an exception). transformers must be importable."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    gguf_module, gguf_tqdm = None, None
    if gguf:  # that module imports tqdm itself, past transformers' switch
        gguf_module = _module("transformers.modeling_gguf_pytorch_utils")
        gguf_tqdm = getattr(gguf_module, "tqdm", None)
        if gguf_tqdm is not None:
            gguf_module.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if gguf_tqdm is not None:
            gguf_module.tqdm = gguf_tqdm
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)


def _module(name: str):
    """The module `name` (imported if needed), or None when this transformers has none."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def quietly(method):
    """Decorator: run `method` inside `quiet_transformers()`."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with quiet_transformers():
            return method(*args, **kwargs)
    return wrapper
