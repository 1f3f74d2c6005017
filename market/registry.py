"""One registry for everything a scenario names: families, mechanisms, strategies, backends and
experiments.

A `Registry` is a dict from name to object with three extras: a decorator that registers under
a name (refusing to let a second, different object shadow the first), lookup that falls back
to an entry-point group so installed plug-ins work without touching genmarket, and an error for
an unknown name that lists the known ones. The built-in families are themselves entry points
(`pyproject.toml`), so the engine finds them the way it finds a plug-in and never imports them.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "plugin_entry_points"]

T = TypeVar("T")

_SCANS: dict[str, tuple[object, dict[str, importlib.metadata.EntryPoint]]] = {}


def plugin_entry_points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points of `group`, name -> EntryPoint (read from the installed metadata once
    per process: a scan costs milliseconds, and scenarios are validated often)."""
    scan = importlib.metadata.entry_points  # looked up each time, so that tests can patch it
    cached = _SCANS.get(group)
    if cached is None or cached[0] is not scan:
        cached = (scan, {ep.name: ep for ep in scan(group=group)})
        _SCANS[group] = cached
    return dict(cached[1])


def _identity(obj: Any) -> tuple[str, str]:
    return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", repr(obj))


class Registry(dict, Generic[T]):
    """name -> registered object, plus the `group` entry points as a fallback.

    `what` names the kind of thing in error messages ("mechanism", "strategy", ...). `check`,
    if given, validates an object loaded from an entry point (returning an error text or None).
    """

    def __init__(self, what: str, group: str, check: Callable[[Any], str | None] | None = None,
                 on_register: Callable[[str, Any], None] | None = None):
        super().__init__()
        self.what, self.group, self.check = what, group, check
        self.on_register = on_register
        self.generation = 0  # bumped on every change, so that caches built from it can tell

    def register(self, name: str, obj: T | None = None):
        """`register(name, obj)`, or `@register(name)` as a decorator. Registering the same
        object again (a reloaded module) is allowed; a different one under a taken name is not."""

        def add(o: T) -> T:
            known = dict.get(self, name)
            if known is not None and known is not o and _identity(known) != _identity(o):
                raise ValueError(f"{self.what} name '{name}' is already taken by "
                                 f"{_identity(known)[0]}.{_identity(known)[1]}")
            if self.on_register is not None:
                self.on_register(name, o)
            self[name] = o
            return o

        return add if obj is None else add(obj)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.generation += 1

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self.generation += 1

    def pop(self, key, *default):
        if key in self:
            self.generation += 1
        return super().pop(key, *default)

    def plugins(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Entry points of this registry's group that are not registered (yet)."""
        return {k: ep for k, ep in plugin_entry_points(self.group).items() if k not in self}

    def names(self) -> list[str]:
        """Every name that `lookup` finds: registered ones in order, then plug-ins sorted."""
        return list(self) + sorted(self.plugins())

    def load_plugins(self) -> None:
        """Load and register every entry point of the group (families are listed this way)."""
        for name, ep in self.plugins().items():
            self.register(name, self._load(name, ep))

    def _load(self, name: str, ep: importlib.metadata.EntryPoint) -> T:
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plug-in: say which, instead of a bare traceback
            raise ValueError(f"entry point '{name}' ({ep.value}) of {self.group} could not be "
                             f"loaded: {type(exc).__name__}: {exc}") from exc
        problem = self.check(obj) if self.check is not None else None
        if problem:
            raise ValueError(f"entry point '{name}' ({ep.value}) of {self.group}: {problem}")
        return obj

    def lookup(self, name: str) -> T:
        """The object registered as `name`, else loaded from the entry-point group. Raises
        ValueError naming the known ones."""
        if name in self:
            return self[name]
        plugins = self.plugins()
        if name not in plugins:
            raise ValueError(f"unknown {self.what} '{name}': not one of {', '.join(sorted(self.names()))}")
        return self.register(name, self._load(name, plugins[name]))
