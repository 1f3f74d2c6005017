"""Reading a scenario file: TOML, top-level overrides, then validation."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from genmarket.market.scenario.errors import ScenarioError
from genmarket.market.scenario.merge import deep_merge
from genmarket.market.scenario.schema import Scenario, validate_scenario

__all__ = ["load_scenario"]


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a TOML scenario, apply overrides (top-level keys such as seed, steps, replicas and
    device; a nested mapping merges into its section), validate. Raises ScenarioError."""
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
        raise ScenarioError(str(path), [f"not valid TOML: {exc}"]) from None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return validate_scenario(deep_merge(data, given), str(path))
