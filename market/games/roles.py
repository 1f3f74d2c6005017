"""The roles of a `genmarket compare` game: `--role` groups and their `--strategies` specs.

A role is one advertiser group of the scenario; its players are the group's advertisers and its
strategies, parsed from `"name=kind:arg:key=value, ..."`, are what they may play (the strategy
config they report to their autobidder when the group delegates, their bidding or reporting
rule otherwise). `make_roles` checks every strategy against the scenario's own schema (the
strategy's pydantic settings), so a bad spec is refused with its field, its value and what is
allowed before anything is run or written.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from genmarket.market.scenario import Scenario, ScenarioError, validate_scenario
from genmarket.market.scenario.advertisers import (
    UCB,
    Exp3,
    Hedge,
    Multiplier,
    QLearning,
    Shift,
    Truthful,
)

__all__ = ["Role", "make_roles", "parse_strategies", "role_spec"]

_SETTINGS = {"truthful": Truthful, "multiplier": Multiplier, "shift": Shift, "hedge": Hedge,
             "exp3": Exp3, "ucb": UCB, "qlearning": QLearning}


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


def _value(text: str) -> Any:
    """A setting's value: an int, a float, true/false, else the text itself (the schema then
    says what is allowed)."""
    for cast in (int, float):
        with contextlib.suppress(ValueError):  # not a number of this kind: try the next
            return cast(text)
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_strategies(text: str) -> dict[str, dict[str, Any]]:
    """`"truthful=truthful, shade=multiplier:0.8, learn=exp3:eta=0.1"` -> {name: strategy config}.

    A spec is a strategy kind, then `:`-separated arguments: a bare value is the kind's one
    parameter (`multiplier:a`, `shift:s`), `key=value` any keyword (numbers, or `low-high-n` for a
    multiplier grid: `hedge:multipliers=0-1.5-31`). Only the syntax is checked here; values are
    checked against the strategy's settings by `make_roles`. Raises ValueError naming the spec.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if "=" not in item.split(":")[0]:
            raise ValueError(f"--strategies: '{item}' is not NAME=SPEC (e.g. shade=multiplier:0.8)")
        name, spec = (x.strip() for x in item.split("=", 1))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"--strategies: '{item}': the name '{name}' must start with a letter "
                             "and hold only letters, digits and _")
        if name in out:
            raise ValueError(f"--strategies: '{name}' is given twice")
        kind, *args = (x.strip() for x in spec.split(":"))
        if not kind:
            raise ValueError(f"--strategies: '{item}': no strategy kind after '{name}='")
        cfg: dict[str, Any] = {"kind": kind}
        for arg in args:
            if "=" in arg:
                key, value = (x.strip() for x in arg.split("=", 1))
                if not key:
                    raise ValueError(f"--strategies: '{item}': '{arg}' has no setting name")
                if key in cfg:
                    raise ValueError(f"--strategies: '{item}': {key} is given twice")
                if key in ("multipliers", "bids"):
                    cfg[key] = _grid(item, key, value)
                else:
                    cfg[key] = _value(value)
            elif kind in ("multiplier", "shift"):
                key = "a" if kind == "multiplier" else "s"
                if key in cfg:
                    raise ValueError(f"--strategies: '{item}': {key} is given twice")
                cfg[key] = _value(arg)
            else:
                raise ValueError(f"--strategies: '{item}': give {kind}'s settings as key=value "
                                 f"(e.g. {name}={kind}:eta=0.1), not '{arg}'")
        out[name] = cfg
    if not out:
        raise ValueError("--strategies: no strategy given")
    return out


def _grid(item: str, key: str, value: str) -> dict[str, Any]:
    parts = value.split("-")
    try:
        if len(parts) != 3:
            raise ValueError
        return {"low": float(parts[0]), "high": float(parts[1]), "n": int(parts[2])}
    except ValueError:
        raise ValueError(f"--strategies: '{item}': {key} = '{value}': must be LOW-HIGH-N "
                         f"(e.g. {key}=0-1.5-31)") from None


def _explain(line: str, kind: str) -> str:
    """A schema error line about one strategy, in the terms of its spec."""
    line = re.sub(r"input should be a valid number.*$", "must be a number", line)
    line = re.sub(r"input should be a valid integer.*$", "must be an integer", line)
    line = re.sub(r"(input should be a valid dictionary|must be a table, not).*$",
                  "must be LOW-HIGH-N (e.g. 0-1.5-31)", line)
    if line.endswith(": unknown key") and kind in _SETTINGS:
        allowed = [f for f in _SETTINGS[kind].model_fields if f != "kind"]
        line += f" (the settings of {kind}: {', '.join(allowed) or 'none'})"
    return line


def check_strategy(scenario: Scenario, index: int, field: str, spec: str,
                   cfg: dict[str, Any]) -> None:
    """Validate strategy `cfg` (given as `spec`, NAME=SPEC) as the `field` of advertiser group
    `index` of `scenario` (its variants included). Raises ValueError with one line per problem,
    each naming the spec, the setting, its value and what is allowed."""
    data = scenario.model_dump(mode="python", exclude_unset=True)
    data["advertisers"][index][field] = cfg
    try:
        validate_scenario(data, "--strategies")
    except ScenarioError as exc:
        own = re.compile(re.escape(f"advertisers[{index}].{field}") + r"(\.|(?=[: ]))")
        lines = []
        for p in exc.problems:
            text = own.sub("", p, count=1).removeprefix(": ")
            lines.append(f"{spec}: {_explain(text, str(cfg.get('kind')))}")
        raise ValueError("--strategies: " + "\n  ".join(lines)) from None


def make_roles(scenario: Scenario, roles: list[tuple[str | None, str]]) -> list[Role]:
    """Roles from (group or None, strategies text) pairs; None means the scenario's only group.
    Every strategy is checked against the scenario (see `check_strategy`). Raises ValueError."""
    groups = {g.group: k for k, g in enumerate(scenario.advertisers)}
    out = []
    for name, text in roles:
        if name is None:
            if len(groups) != 1:
                raise ValueError(f"--role: the scenario has groups {', '.join(groups)}; name one "
                                 "with --role GROUP before each --strategies")
            name = next(iter(groups))
        if name not in groups:
            raise ValueError(f"--role {name}: not a group of the scenario ({', '.join(groups)})")
        g = scenario.advertisers[groups[name]]
        field = "report" if g.delegated else "strategy"
        strategies = parse_strategies(text)
        given = {i.split("=", 1)[0].strip(): i.strip() for i in text.split(",") if i.strip()}
        for sname, cfg in strategies.items():
            check_strategy(scenario, groups[name], field, given[sname], cfg)
        out.append(Role(name, g.count, strategies, field))
    if len({r.name for r in out}) != len(out):
        raise ValueError("--role: a group is named twice")
    return out
