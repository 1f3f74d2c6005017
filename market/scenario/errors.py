"""Scenario errors: pydantic's validation errors turned into one line per bad field.

Each line reads `path = value: what is allowed`, with the path as the user wrote it
(`advertisers[1].strategy.kind`), not pydantic's (which names union branches such as 'hedge').
"""

from __future__ import annotations

import re
from typing import Any

from genmarket.market.engine.seam import WORLDS, families, family_of
from genmarket.market.scenario.advertisers import strategy_kinds

# the most characters of a value an error echoes, and of one problem line
SHOWN = 100
LINE = 400


def shown(value: Any) -> str:
    """repr(value) (true and false as TOML writes them), cut to at most SHOWN characters (a
    megabyte-long string is echoed as its first ones, then '...')."""
    text = str(value).lower() if isinstance(value, bool) else repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def _cut(line: str) -> str:
    return line if len(line) <= LINE else line[:LINE - 3] + "..."


class ScenarioError(ValueError):
    """A scenario that does not validate. `problems` holds one line per bad field, each at most
    LINE characters (whatever a value echoed in it)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = [_cut(p) for p in problems]
        problems = self.problems
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
            key = str(part)  # a key the user wrote may be a megabyte long too
            out += ("." if out else "") + (key if len(key) <= SHOWN else key[:SHOWN - 3] + "...")
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
    "string_too_long": "must be at most {max_length} characters long",
    "too_long": "must have at most {max_length} item(s)",
}

# strict mode's type errors: what the field wants, then what the TOML value is
_WANTED = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}
_GIVEN = ((bool, "a boolean"), (int, "an integer"), (float, "a decimal number"),
          (str, "a string"), (list, "an array"), (dict, "a table"))


def _wrong_type(kind: str, value: Any) -> str:
    given = next((word for t, word in _GIVEN if isinstance(value, t)), type(value).__name__)
    hint = ""
    if kind == "int_type" and isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        hint = f" (write {int(value)})"  # 1e6 in TOML is a float
    return f"{_WANTED[kind]}, not {given}{hint}"


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
        return f"{path} = {shown(value)}: not one of {allowed}"
    if kind == "none_required" or (kind in ("model_type", "model_attributes_type")
                                   and any("[" in str(p) for p in loc)):
        return None  # a branch of `X | None` or of `number | table`: the other branch says it
    loc = _clean_loc(loc, data)
    path = _path(loc) or "(top level)"
    value = err.get("input")
    if kind in _WANTED:
        return f"{path} = {shown(value)}: {_wrong_type(kind, value)}"
    if kind == "extra_forbidden":
        mech = data.get("mechanism") if isinstance(data, dict) else None
        if len(loc) == 2 and loc[0] == "mechanism" and isinstance(mech, dict):
            return _not_a_setting(str(loc[1]), mech.get("kind"))
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required"
    if kind == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{path} = {shown(value)}: not one of {allowed}"
    if kind in _ALLOWED:
        return f"{path} = {shown(value)}: {_ALLOWED[kind].format(**ctx)}"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        roots = ("advertisers", "advertiser group", "metrics", "mechanism", "experiment",
                 "steps", "variants", "dtype", *WORLDS, *(data if isinstance(data, dict) else ()))
        # a message that already starts with a path: a root, then a delimiter
        if any(re.match(re.escape(str(r)) + r"([.\[: ]|$)", msg) for r in roots):
            return msg
        echo = value if not isinstance(value, dict) else None
        return f"{path} = {shown(echo)}: {msg}" if echo is not None else f"{path}: {msg}"
    return f"{path} = {shown(value)}: {err['msg'].lower()}"


def _not_a_setting(key: str, kind: Any) -> str:
    try:
        settings = family_of(str(kind)).settings
    except ValueError:
        return f"mechanism.{key}: unknown key"
    names = [f for f in settings.model_fields if f != "kind"]
    return (f"mechanism.{key} is not a setting of kind = {kind!r} "
            f"(its settings: {', '.join(names) or 'none'})")


def _head(line: str) -> str:
    return line.split(" = ")[0].split(":")[0]


def dedupe(lines: list[str]) -> list[str]:
    """`lines` without those whose path has a more specific error below it (`a.b` goes when
    `a.b.c` is there). Linear in the number of lines: each path's dotted prefixes are collected
    once."""
    below: set[str] = set()
    for line in lines:
        head = _head(line)
        at = head.find(".")
        while at != -1:
            below.add(head[:at])
            at = head.find(".", at + 1)
    return [line for line in lines if _head(line) not in below]
