"""Plug-in strategies: a class registered outside genmarket is usable from a scenario file."""

import pytest
import torch

from genmarket.market.engine.market import Market
from genmarket.market.scenario import ScenarioError, validate_scenario
from genmarket.strategies.base import STRATEGIES, Strategy, register_strategy


@pytest.fixture
def lowest_plugin():
    """A strategy that always plays action `index` (default 0, the lowest grid point)."""

    @register_strategy("test_lowest")
    class Lowest(Strategy):
        learns = False

        def __init__(self, R, A, C, K, device="cpu", dtype=torch.float32, *, index: int = 0):
            super().__init__(R, A, C, K, device, dtype)
            if not 0 <= index < K:
                raise ValueError(f"index = {index}: must be in [0, {K})")
            self.index = index

        def policy(self, t):
            p = torch.zeros(self.R, self.A, self.C, self.K, device=self.device, dtype=self.dtype)
            p[..., self.index] = 1.0
            return p

        def update(self, ctx, actions, utility, active, grid_utility, t):
            return None

    yield Lowest
    STRATEGIES.pop("test_lowest")


def test_plugin_strategy_runs_from_a_scenario(scenario_dict, lowest_plugin):
    scenario_dict["advertisers"][0]["strategy"] = {
        "kind": "test_lowest", "index": 2, "multipliers": {"low": 0.5, "high": 1.0, "n": 6}}
    sc = validate_scenario(scenario_dict)
    assert sc.advertisers[0].strategy.params() == {"index": 2}
    model = Market(sc)
    for _ in range(5):
        model.step()
    rec = model.last_round
    torch.testing.assert_close(torch.as_tensor(rec["bid"]), torch.as_tensor(0.7 * rec["value"]))


def test_plugin_settings_are_checked(scenario_dict, lowest_plugin):
    scenario_dict["advertisers"][0]["strategy"] = {"kind": "test_lowest", "index": 9,
                                                   "multipliers": {"low": 0, "high": 1, "n": 3}}
    with pytest.raises(ScenarioError, match=r"advertisers\[0\]\.strategy: strategy 'test_lowest' "
                                            r"rejected its settings: index = 9"):
        validate_scenario(scenario_dict)
    scenario_dict["advertisers"][0]["strategy"] = {"kind": "test_lowest", "colour": "red"}
    with pytest.raises(ScenarioError, match="unexpected keyword argument 'colour'"):
        validate_scenario(scenario_dict)


def test_unknown_kind_lists_the_plugins(scenario_dict, lowest_plugin):
    scenario_dict["advertisers"][0]["strategy"] = {"kind": "nope"}
    with pytest.raises(ScenarioError) as info:
        validate_scenario(scenario_dict)
    assert info.value.problems == [
        "advertisers[0].strategy.kind = 'nope': not one of truthful, multiplier, shift, hedge, exp3, "
        "ucb, qlearning, test_lowest"]
