"""Scenario files: TOML validated once into typed objects (pydantic 2).

`load_scenario(path, overrides)` returns a `Scenario` or raises `ScenarioError`, whose message
lists every bad field as `path = value: what is allowed`. Unknown keys, NaN, inf and out-of-range
numbers are errors. Modules: `base` (building blocks), `advertisers` (`[[advertisers]]`),
`schema` (the whole scenario, built from the family registry), `errors`, `merge`, `files`.
"""

from genmarket.market.scenario.advertisers import strategy_kinds
from genmarket.market.scenario.errors import ScenarioError
from genmarket.market.scenario.files import load_scenario
from genmarket.market.scenario.merge import deep_merge
from genmarket.market.scenario.schema import Scenario, scenario_model, validate_scenario

__all__ = ["Scenario", "ScenarioError", "deep_merge", "load_scenario", "scenario_model",
           "strategy_kinds", "validate_scenario"]
