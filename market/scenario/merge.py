"""Merging overrides into a scenario mapping: variants, `Market(**overrides)`, CLI overrides."""

from __future__ import annotations

from typing import Any

__all__ = ["deep_merge", "nested_overrides"]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` merged in: dicts merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def nested_overrides(flat: dict[str, Any]) -> dict[str, Any]:
    """Keyword overrides -> a nested mapping: `mechanism__reserve=0.1` sets mechanism.reserve
    (keyword names cannot hold dots, so a double underscore separates the levels)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
