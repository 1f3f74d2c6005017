"""Scenario errors: pydantic's validation errors turned into one line per bad field.

Each line reads `path = value: what is allowed`, with the path as the user wrote it
(`advertisers[1].strategy.kind`), not pydantic's (which names union branches such as 'hedge').
"""

from __future__ import annotations

import re
from typing import Any

from genmarket.market.engine.seam import WORLDS, families, family_of
from genmarket.market.scenario.advertisers import strategy_kinds


class ScenarioError(ValueError):
    """A scenario that does not validate. `problems` holds one line per bad field."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join([f"scenario error in {source}", *("  " + p for p in problems)]))

    def __reduce__(self):
        # rebuilt from its fields, so that it crosses process boundaries (compare's workers)
        return (type(self), (self.source, self.problems))


def tag_of(family: str) -> str:
    """The union tag of a family's settings branch. It holds "[" so that error paths drop it
    (pydantic puts union branch names in the location; users never wrote them)."""
    return f"family[{family}]"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


_ALLOWED = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "finite_number": "must be a finite number",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "string_pattern_mismatch": "must match {pattern}",
    "too_short": "must have at least {min_length} item(s)",
}


def _clean_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop pydantic's union-branch names ('hedge', 'uniform', 'float', ...) from an error path,
    keeping only the keys and indices that exist in the user's data."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            out.append(part)
        elif isinstance(part, str) and (isinstance(node, dict) or "[" in part or part in _BRANCHES):
            if isinstance(node, dict) and part not in node and part in node.values():
                continue  # a discriminator value ('hedge'), not a key
            if part in _BRANCHES or "[" in part:
                continue
            out.append(part)  # a key the user left out (missing) or misspelt
            node = None
        else:
            out.append(part)
            node = None
    return tuple(out)


_BRANCHES = {"float", "int", "bool", "str", "constrained-float", "constrained-int", "plugin"}


def format_error(err: dict[str, Any], data: dict[str, Any]) -> str | None:
    kind = err["type"]
    ctx = err.get("ctx", {})
    loc = tuple(err["loc"])
    if kind == "strategy_kind":
        kind, ctx = "union_tag_invalid", {"discriminator": "'kind'", "expected_tags": "<strategies>"}
    if kind == "mechanism_kind":
        section = _lookup(data, _clean_loc(loc, data))
        if not isinstance(section, dict):
            return (f"{_path(_clean_loc(loc, data))} = {section!r}: must be a table with a kind "
                    "(e.g. [mechanism] kind = \"second_price\")")
        kinds = sorted({k for f in families() for k in f.kinds})
        kind, ctx = "union_tag_invalid", {"discriminator": "'kind'", "expected_tags": ", ".join(kinds)}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx.get("discriminator", "'kind'").strip("'")
        path = _path(_clean_loc(loc, data)) + "." + tag
        value = _lookup(data, _clean_loc(loc, data) + (tag,))
        allowed = ctx.get("expected_tags", "").replace("'", "")
        if allowed == "<strategies>":
            allowed = ", ".join(strategy_kinds())
        if value is None:
            return f"{path}: required, one of {allowed}"
        return f"{path} = {value!r}: not one of {allowed}"
    loc = _clean_loc(loc, data)
    path = _path(loc) or "(top level)"
    value = err.get("input")
    if kind == "extra_forbidden":
        mech = data.get("mechanism") if isinstance(data, dict) else None
        if len(loc) == 2 and loc[0] == "mechanism" and isinstance(mech, dict):
            return _not_a_setting(str(loc[1]), mech.get("kind"))
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required"
    if kind == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{path} = {value!r}: not one of {allowed}"
    if kind in _ALLOWED:
        return f"{path} = {value!r}: {_ALLOWED[kind].format(**ctx)}"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        roots = ("advertisers", "advertiser group", "metrics", "mechanism", "experiment",
                 "steps", "variants", "dtype", *WORLDS, *(data if isinstance(data, dict) else ()))
        # a message that already starts with a path: a root, then a delimiter
        if any(re.match(re.escape(str(r)) + r"([.\[: ]|$)", msg) for r in roots):
            return msg
        shown = value if not isinstance(value, dict) else None
        return f"{path} = {shown!r}: {msg}" if shown is not None else f"{path}: {msg}"
    return f"{path} = {value!r}: {err['msg'].lower()}"


def _not_a_setting(key: str, kind: Any) -> str:
    try:
        settings = family_of(str(kind)).settings
    except ValueError:
        return f"mechanism.{key}: unknown key"
    names = [f for f in settings.model_fields if f != "kind"]
    return (f"mechanism.{key} is not a setting of kind = {kind!r} "
            f"(its settings: {', '.join(names) or 'none'})")


def dedupe(lines: list[str]) -> list[str]:
    keep = []
    for line in lines:
        head = line.split(" = ")[0].split(":")[0]
        if any(o != line and o.split(" = ")[0].split(":")[0].startswith(head + ".") for o in lines):
            continue  # a more specific error below this path exists
        keep.append(line)
    return keep
