"""The roles of a `genmarket compare` game: `--role` groups and their `--strategies` specs.

A role is one advertiser group of the scenario; its players are the group's advertisers and its
strategies, parsed from `"name=kind:arg:key=value, ..."`, are what they may play (the strategy
config they report to their autobidder when the group delegates, their bidding or reporting
rule otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from genmarket.market.scenario import Scenario

__all__ = ["Role", "make_roles", "parse_strategies", "role_spec"]


@dataclass(frozen=True)
class Role:
    """A role of the game: scenario group `name`, its `players`, the strategies they may play
    (name -> strategy config, as in a scenario) and the field they set (`strategy` or `report`)."""

    name: str
    players: int
    strategies: dict[str, dict[str, Any]]
    field: str


def role_spec(roles: list[Role]) -> dict[str, tuple[list[str], int]]:
    """The roles as `market.games` takes them: role -> (strategies, players)."""
    return {r.name: (list(r.strategies), r.players) for r in roles}


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_strategies(text: str) -> dict[str, dict[str, Any]]:
    """`"truthful=truthful, shade=multiplier:0.8, learn=exp3:eta=0.1"` -> {name: strategy config}.

    A spec is a strategy kind, then `:`-separated arguments: a bare number is the kind's one
    parameter (`multiplier:a`, `shift:s`), `key=value` any keyword (numbers, or `low-high-n` for a
    multiplier grid: `hedge:multipliers=0-1.5-31`). Raises ValueError naming the bad spec.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if "=" not in item.split(":")[0]:
            raise ValueError(f"--strategies: '{item}' is not NAME=SPEC (e.g. shade=multiplier:0.8)")
        name, spec = (x.strip() for x in item.split("=", 1))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"--strategies: name '{name}' must be letters, digits and _")
        if name in out:
            raise ValueError(f"--strategies: '{name}' is given twice")
        kind, *args = spec.split(":")
        cfg: dict[str, Any] = {"kind": kind}
        for arg in args:
            if "=" in arg:
                key, value = arg.split("=", 1)
                parts = value.split("-")
                if key in ("multipliers", "bids") and len(parts) == 3:
                    cfg[key] = {"low": float(parts[0]), "high": float(parts[1]), "n": int(parts[2])}
                else:
                    cfg[key] = _number(value)
            elif kind in ("multiplier", "shift"):
                cfg["a" if kind == "multiplier" else "s"] = float(arg)
            else:
                raise ValueError(f"--strategies: '{spec}': give {kind}'s settings as key=value")
        out[name] = cfg
    if not out:
        raise ValueError("--strategies: no strategy given")
    return out


def make_roles(scenario: Scenario, roles: list[tuple[str | None, str]]) -> list[Role]:
    """Roles from (group or None, strategies text) pairs; None means the scenario's only group."""
    groups = {g.group: g for g in scenario.advertisers}
    out = []
    for name, text in roles:
        if name is None:
            if len(groups) != 1:
                raise ValueError(f"--role: the scenario has groups {', '.join(groups)}; name one")
            name = next(iter(groups))
        if name not in groups:
            raise ValueError(f"--role {name}: not a group of the scenario ({', '.join(groups)})")
        g = groups[name]
        out.append(Role(name, g.count, parse_strategies(text), "report" if g.delegated else "strategy"))
    if len({r.name for r in out}) != len(out):
        raise ValueError("--role: a group is named twice")
    return out
