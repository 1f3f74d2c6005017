"""Reference lines of the metric specifications: the closed forms where their conditions hold,
nothing where they do not, and the simulated market agreeing with them where theory applies."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket import Market
from genmarket.market.engine.seam import family_of
from genmarket.market.scenario import validate_scenario
from genmarket.mechanisms.classic.metrics import bid_theory, revenue_theory

BASE = {
    "name": "ref", "seed": 1, "steps": 4, "auctions_per_step": 8, "replicas": 2,
    "mechanism": {"kind": "first_price"}, "feedback": {"kind": "full"},
    "advertisers": [{"group": "bidders", "count": 3,
                     "value": {"dist": "uniform", "low": 0.0, "high": 1.0}}],
    "metrics": {"every": 2, "deviation_grid": {"low": 0.0, "high": 1.5, "n": 7}},
}


def scenario(kind="first_price", n=3, h=1.0, **change):
    d = copy.deepcopy(BASE)
    d["mechanism"]["kind"] = kind
    d["advertisers"][0].update(count=n, value={"dist": "uniform", "low": 0.0, "high": h})
    for path, value in change.items():
        *head, last = path.split("__")
        target = d
        for k in head:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[last] = value
    return validate_scenario(d)


def refs(sc, column):
    """The reference values the family's spec of `column` gives for `sc`."""
    return family_of(sc.mechanism.kind).metric(column).reference(sc)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), h=st.floats(0.1, 50.0))
def test_first_price_closed_forms(n, h):
    sc = scenario("first_price", n, h)
    (bid,) = refs(sc, "mean_bid_ratio").values()
    (rev,) = refs(sc, "revenue").values()
    assert bid == pytest.approx((n - 1) / n)
    assert rev == pytest.approx(h * (n - 1) / (n + 1))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 12), h=st.floats(0.1, 50.0), kind=st.sampled_from(["second_price", "vcg"]))
def test_second_price_truthful_and_revenue_equivalence(n, h, kind):
    sc = scenario(kind, n, h)
    assert list(refs(sc, "mean_bid_ratio").values()) == [1.0]
    (rev,) = refs(sc, "revenue").values()
    assert rev == pytest.approx(h * (n - 1) / (n + 1))


def test_the_labels_say_what_the_line_is():
    sc = scenario("first_price", 5, 2.0)
    assert next(iter(refs(sc, "mean_bid_ratio")))== "Bayes-Nash bid (n-1)/n (n=5)"
    assert "Bayes-Nash revenue" in next(iter(refs(sc, "revenue")))
    assert "truthful" in next(iter(refs(scenario("second_price"), "revenue")))


@pytest.mark.parametrize("change", [
    {"mechanism__reserve": 0.1},
    {"mechanism__ctrs": [1.0, 0.5]},
    {"advertisers__0__entry": {"kind": "learned"}},
    {"advertisers__0__value": {"dist": "uniform", "low": 0.2, "high": 1.0}},
    {"advertisers__0__value": {"dist": "beta", "a": 2.0, "b": 2.0}},
    {"advertisers__0__value": 0.7},
    {"advertisers__0__report": {"kind": "truthful"}},
    {"advertisers__0__count": 1},
])
def test_no_first_price_line_outside_the_textbook_case(change):
    sc = scenario("first_price", **change)
    assert bid_theory(sc) == {} and revenue_theory(sc) == {}


def test_two_value_ranges_draw_no_line():
    d = copy.deepcopy(BASE)
    d["advertisers"].append({"group": "rich", "count": 2,
                             "value": {"dist": "uniform", "low": 0.0, "high": 2.0}})
    sc = validate_scenario(d)
    assert bid_theory(sc) == {} and revenue_theory(sc) == {}


def test_second_price_truthful_line_survives_a_reserve_but_not_two_slots():
    assert list(bid_theory(scenario("second_price", mechanism__reserve=0.2)).values()) == [1.0]
    assert revenue_theory(scenario("second_price", mechanism__reserve=0.2)) == {}
    assert bid_theory(scenario("second_price", mechanism__ctrs=[1.0, 0.5])) == {}
    assert list(bid_theory(scenario("vcg", mechanism__ctrs=[1.0, 0.5])).values()) == [1.0]


@pytest.mark.parametrize("kind,a", [("second_price", 1.0), ("first_price", 0.75)])
def test_the_market_reaches_the_revenue_reference(kind, a):
    """Four bidders on U[0, 2] bidding a v (truthful in second price, the Bayes-Nash 3/4 in first
    price): the simulated revenue per auction is the closed form within sampling error."""
    sc = scenario(kind, 4, 2.0, advertisers__0__strategy={"kind": "multiplier", "a": a},
                  auctions_per_step=4000, steps=2, metrics__every=1)
    model = Market(sc)
    revenue = []
    while model.running:
        model.step()
        revenue.append(model.step_metrics["revenue"])
    rev = np.concatenate(revenue)  # 2 rounds x 2 replicas, each a mean of 4000 auctions
    (theory,) = revenue_theory(sc).values()
    # the second-highest of 4 U[0, 2] has sd 2 sqrt(6/175) < 0.4: a mean of 4000 has sd < 0.007
    assert abs(rev.mean() - theory) < 0.02
    (ratio,) = bid_theory(sc).values()
    assert ratio == pytest.approx(a)
