"""A backend's settings as a typed scenario table: one field per keyword-only argument of the
backend's constructor (its name, type and default), so that an unknown key, a value of the wrong
type or NaN is a validation error naming the key, not a TypeError when the run starts. The text
world's `[language.synthetic]` and the image world's `[image.concept]` are built this way."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

from pydantic import create_model, model_validator

from genmarket.market.scenario.base import Strict

__all__ = ["keyword_settings"]


def keyword_settings(backend: type, *, name: str, path: str, what: str, module: str,
                     exclude: Mapping[str, str],
                     check: Callable[[dict[str, Any]], None] | None = None) -> type[Strict]:
    """A `Strict` model named `name` with one field per keyword-only argument of
    `backend.__init__` (type from its annotation, default from its signature), leaving out the
    keys of `exclude`.

    path — the table's place in the scenario ("language.synthetic"), which every error starts
    with. what — the words for its settings in the unknown-key error ("the synthetic world's
    settings"). exclude — {argument: where it is set instead} ("length": "language.length"): a
    key of it in the table is refused with that pointer. check(settings) — range rules between
    the values, raising ValueError "key = value: ..."; the message gets `path.` in front.
    Returns the model class (its instances are frozen; `model_dump()` gives the keywords).
    """
    init = backend.__init__
    hints = get_type_hints(init)
    fields = {key: (hints[key], p.default)
              for key, p in inspect.signature(init).parameters.items()
              if p.kind is p.KEYWORD_ONLY and key not in exclude}

    class Base(Strict):
        @model_validator(mode="before")
        @classmethod
        def _known(cls, data):
            unknown = [k for k in data if k not in cls.model_fields] if isinstance(data, dict) else []
            if unknown and unknown[0] in exclude:
                raise ValueError(f"{path}.{unknown[0]}: unknown key (set {exclude[unknown[0]]})")
            if unknown:
                raise ValueError(f"{path}.{unknown[0]}: unknown key ({what}: "
                                 f"{', '.join(cls.model_fields)})")
            return data

        @model_validator(mode="after")
        def _ranges(self):
            if check is not None:
                try:
                    check(self.model_dump())
                except ValueError as exc:
                    raise ValueError(f"{path}.{exc}") from None
            return self

    Base.__name__ = Base.__qualname__ = f"_{name}Base"
    Base.__module__ = module
    return create_model(name, __base__=Base, __module__=module, **fields)
