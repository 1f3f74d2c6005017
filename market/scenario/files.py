"""Reading a scenario file: TOML, top-level overrides, then validation."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from genmarket.market.scenario.errors import ScenarioError
from genmarket.market.scenario.machine import check_machine
from genmarket.market.scenario.merge import deep_merge
from genmarket.market.scenario.schema import Scenario, validate_scenario

__all__ = ["load_scenario"]


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a TOML scenario, apply overrides (top-level keys such as seed, steps, replicas and
    device; a nested mapping merges into its section), validate, and check it against this
    machine (`check_machine`: the CUDA device, the world's files, memory per round). Returns the
    `Scenario`; raises ScenarioError naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(str(path), ["file not found"]) from None
    except IsADirectoryError:
        raise ScenarioError(str(path), ["is a directory: give a scenario .toml file"]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(path), ["not a text file (not UTF-8): a scenario is TOML"]) from None
    except tomllib.TOMLDecodeError as exc:
        text = path.read_text(errors="replace").lstrip()
        hint = " (it looks like JSON: a scenario is TOML, name = \"...\")" if text[:1] in "{[" and text else ""
        raise ScenarioError(str(path), [f"not valid TOML{hint}: {exc}"]) from None
    except RecursionError:
        raise ScenarioError(str(path), [_too_deep("arrays or tables")]) from None
    deep = _deeper_than(data, MAX_DEPTH)
    if deep is not None:
        raise ScenarioError(str(path), [_too_deep(f"{deep} is")])
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    scenario = validate_scenario(deep_merge(data, given), str(path))
    check_machine(scenario, str(path))
    return scenario


# A scenario is a few levels deep (advertisers[0].strategy.multipliers.low is 4); a file far
# deeper is not a scenario, and would only exhaust the recursion of the code that reads it.
MAX_DEPTH = 32


def _too_deep(where: str) -> str:
    return (f"nested too deeply: {where} more than {MAX_DEPTH} levels deep (a scenario is a few "
            "levels deep)")


def _deeper_than(data: Any, limit: int) -> str | None:
    """The path of the first value nested more than `limit` levels deep, or None. Iterative, so
    that the check itself cannot run out of recursion."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            return path[:100]
        if isinstance(node, dict):
            stack += [(v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
    return None
