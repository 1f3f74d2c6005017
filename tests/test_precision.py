"""Float precision: where float32 cannot resolve the money quantities a run reports (MOSAIC at
tau = 1e6: a misreport gain of ~0.3 that float64 puts at 1e-10), the scenario's `precision`
switches to float64 ("auto", the default), refuses with the reason ("refuse") or runs as set
and flags the quantities within rounding ("as_set"). The rule's boundary is checked against
real runs: just inside it float32 agrees with float64 to RESOLUTION of the reward scale."""

from __future__ import annotations

import math

import pytest

import genmarket
from genmarket.market.engine.market import Market
from genmarket.market.engine.precision import RESOLUTION, choose_precision, limit
from genmarket.market.reports.text import run_sentences
from genmarket.market.scenario import ScenarioError, validate_scenario
from genmarket.mechanisms.classic import FAMILY as CLASSIC
from genmarket.mechanisms.mosaic import FAMILY as MOSAIC

MONEY = ("misreport_gain", "regret", "revenue")


def mosaic(tau: float, **top) -> dict:
    """A small MOSAIC market: 4 truthful-ish hedge reporters, 40 rounds."""
    group = {"count": 2, "strategy": {"kind": "hedge", "multipliers": {"low": 0.0, "high": 2.0,
                                                                       "n": 5}, "eta": 0.2}}
    return {"name": "precision", "seed": 3, "steps": 40, "auctions_per_step": 8, "replicas": 2,
            "mechanism": {"kind": "mosaic", "tau": tau, "candidates": 4},
            "language": {"topics": ["cooking", "travel"], "queries_per_topic": 2, "length": 6},
            "advertisers": [{**group, "group": "kitchen", "description": "baking supplies",
                             "relevance": {"cooking": 0.9}},
                            {**group, "group": "travel", "description": "flights",
                             "relevance": {"travel": 0.9}}],
            "metrics": {"every": 10, "deviation_grid": {"low": 0.0, "high": 2.0, "n": 5},
                        "samples": 0},
            **top}


def summary(data: dict) -> dict:
    return genmarket.run(data).summary


def test_default_switches_to_float64_and_agrees_with_it():
    auto = summary(mosaic(1e6))
    as64 = summary(mosaic(1e6, dtype="float64"))
    as32 = summary(mosaic(1e6, precision="as_set"))
    assert auto["precision"]["dtype"] == "float64" and auto["precision"]["asked"] == "float32"
    assert "not the float32 set" in auto["precision"]["sentence"]
    scenario = validate_scenario(mosaic(1e6)).model_dump(mode="json")
    assert any("not the float32 set" in x for x in run_sentences(auto, scenario, MOSAIC))
    for k in MONEY:
        assert auto["metrics"][k] == pytest.approx(as64["metrics"][k], abs=1e-6), k
    # the error the switch avoids is real: float32 gets a misreport gain far from float64's
    assert abs(as32["metrics"]["misreport_gain"] - as64["metrics"]["misreport_gain"]) > 1e-2


def test_refuse_names_the_field_the_ratio_and_the_ways_out():
    with pytest.raises(ScenarioError) as err:
        validate_scenario(mosaic(1e6, precision="refuse"))
    text = str(err.value)
    assert "dtype = 'float32': cannot resolve" in text and "tau * (log M" in text
    assert "dtype = 'float64'" in text and "precision = 'as_set'" in text
    # float64 resolves it, so refuse accepts it as set
    assert choose_precision(validate_scenario(mosaic(1e6, precision="refuse",
                                                     dtype="float64"))).dtype == "float64"


def test_as_set_runs_in_float32_and_flags_what_rounding_could_have_made():
    s = summary(mosaic(1e6, precision="as_set"))
    p = s["precision"]
    assert p["dtype"] == "float32" and not p["resolved"]
    assert "misreport_gain" in p["unresolved"]
    for k in p["unresolved"]:  # each flagged one is within the bound, as the flag says
        assert abs(s["metrics"][k]) <= p["rounding_bound"]
    sentences = run_sentences(s, validate_scenario(mosaic(1e6)).model_dump(mode="json"), MOSAIC)
    text = " ".join(sentences)
    assert "unresolved: within the float32 rounding bound" in text
    # neither claim of the resolved case: truthful is a best response / some deviation pays
    assert "best response on the deviation grid" not in text and "pays more" not in text
    assert "shows neither" in text
    assert any(x.startswith("Unresolved in float32: ") for x in sentences)


def _tau_at(ratio: float, data: dict) -> float:
    """The tau at which MOSAIC's stated largest / scale equals `ratio` for `data`."""
    sc = validate_scenario({**data, "dtype": "float64"})
    m1 = MOSAIC.magnitudes(sc)
    per_tau = (MOSAIC.magnitudes(validate_scenario(
        {**data, "dtype": "float64", "mechanism": {**data["mechanism"], "tau": 2.0}})).largest
        - m1.largest)  # the stated largest is affine in tau; data has tau = 1
    return (ratio * m1.scale - (m1.largest - per_tau)) / per_tau


def test_boundary_just_inside_stays_float32_and_resolves_just_outside_switches():
    lim = limit("float32")
    inside, outside = _tau_at(0.99 * lim, mosaic(1.0)), _tau_at(1.01 * lim, mosaic(1.0))
    sc_in = validate_scenario(mosaic(inside))
    assert MOSAIC.magnitudes(sc_in).ratio == pytest.approx(0.99 * lim)
    assert Market(sc_in).dtype.is_floating_point and str(Market(sc_in).dtype) == "torch.float32"
    assert choose_precision(validate_scenario(mosaic(outside))).dtype == "float64"
    # inside, float32's money quantities agree with float64's to RESOLUTION of the scale
    s32, s64 = summary(mosaic(inside)), summary(mosaic(inside, dtype="float64"))
    assert s32["precision"]["dtype"] == "float32" and not s32["precision"]["unresolved"]
    for k in MONEY:
        assert math.isclose(s32["metrics"][k], s64["metrics"][k], abs_tol=RESOLUTION), k


def test_reward_scale_one_millionth_switches_too():
    data = mosaic(1.0)
    for g in data["advertisers"]:
        g["value"] = 1e-6
    choice = choose_precision(validate_scenario(data))
    assert choice.dtype == "float64" and "reward scale of 1e-06" in choice.sentence()


def classic(low: float, high: float) -> dict:
    return {"name": "c", "steps": 10, "mechanism": {"kind": "second_price"},
            "advertisers": [{"group": "b", "count": 3,
                             "value": {"dist": "uniform", "low": low, "high": high}}]}


@pytest.mark.parametrize("low, high, dtype", [(0, 1, "float32"), (0, 1e6, "float32"),
                                              (0, 1e-6, "float32"), (1e6, 1e6 + 1, "float64")])
def test_classic_scale_alone_is_harmless_a_narrow_spread_is_not(low, high, dtype):
    choice = choose_precision(validate_scenario(classic(low, high)))
    assert choice.dtype == dtype
    assert CLASSIC.magnitudes(validate_scenario(classic(low, high))).ratio == pytest.approx(
        max(high, 1e-300) / (high - low))
