"""Scenario files: TOML validated once into typed objects (pydantic 2).

`load_scenario(path, overrides)` returns a `Scenario` or raises `ScenarioError`, whose message
lists every bad field as `path = value: what is allowed`. Unknown keys, NaN, inf, out-of-range
numbers and values of the wrong type (strict: nothing is coerced) are errors, and so is what this
machine cannot run. Modules: `base` (building blocks), `advertisers` (`[[advertisers]]`),
`schema` (the whole scenario, built from the family registry), `errors`, `merge`, `files`,
`machine` (device, world files, memory per round).
"""

from genmarket.market.scenario.advertisers import strategy_kinds
from genmarket.market.scenario.errors import ScenarioError
from genmarket.market.scenario.files import load_scenario
from genmarket.market.scenario.merge import deep_merge
from genmarket.market.scenario.schema import Scenario, scenario_model, validate_scenario

__all__ = ["Scenario", "ScenarioError", "deep_merge", "load_scenario", "scenario_model",
           "strategy_kinds", "validate_scenario"]
