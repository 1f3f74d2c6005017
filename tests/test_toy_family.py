"""Adding an auction is adding a family: an all-pay auction built here, in the test, registered,
and run through `run`, `compare` and `report` with no file outside this test touched.

The all-pay auction: the highest bid wins one unit, and every entrant pays its own bid, win or
lose. Its family brings settings, a mechanism, a market adapter, metric specifications, panels
and example batches — what the README's "Adding an auction" section walks through.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import pytest
import torch

from genmarket.market.engine import streams as S
from genmarket.market.engine.learning import grid_feedback
from genmarket.market.engine.seam import (
    FAMILIES,
    Cleared,
    Example,
    Family,
    MetricSpec,
    Panel,
    register_family,
)
from genmarket.market.games.compare import run_compare
from genmarket.market.games.roles import make_roles
from genmarket.market.reports.report import write_report
from genmarket.market.running.runner import run_scenario
from genmarket.market.scenario import validate_scenario
from genmarket.market.scenario.base import Strict
from genmarket.mechanisms.base import AuctionBatch, Outcome, reference_deviations
from genmarket.mechanisms.contract import check_family, column_setter


class AllPaySettings(Strict):
    """`[mechanism]` of the all-pay auction (no settings besides the kind)."""

    kind: Literal["all_pay"]

    def params(self) -> dict:
        return {}


class AllPay:
    """Highest bid wins (ties to the higher noise); every entrant pays its bid."""

    name = "all_pay"

    def run(self, batch: AuctionBatch, generator=None) -> Outcome:
        score = torch.where(batch.mask, batch.bids + 1e-9 * batch.noise, -torch.inf)
        win = torch.nn.functional.one_hot(score.argmax(-1), batch.bids.shape[-1]).bool()
        win &= batch.mask
        alloc = win.to(batch.bids.dtype)
        pay = torch.where(batch.mask, batch.bids, torch.zeros_like(batch.bids))
        return Outcome(alloc, pay, torch.where(win, 0, -1))


class AllPayAdapter:
    """Clears all-pay rounds; full feedback by re-clearing every grid bid (reference loop)."""

    def __init__(self, spec):
        self.spec, self.mech = spec, AllPay()

    def clear(self, rnd):
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        bids = torch.cat([a[2] for a in rnd.acted], -1)
        noise = self.spec.streams.uniform(S.TIES, rnd.t, (B, n), self.spec.dtype)
        batch = AuctionBatch(bids.reshape(R * B, n), rnd.mask.reshape(R * B, n), noise.reshape(R * B, n))
        out = self.mech.run(batch)
        alloc, pay = out.allocation.view(R, B, n), out.payment.view(R, B, n)
        return Cleared(alloc, pay, rnd.values * alloc - pay, {"batch": batch, "bids": bids})

    def feedback(self, rnd, cleared, g, role):
        own = cleared.gross[..., g.cols]
        if not self.spec.full:
            return own, None
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        grid = torch.cat([gg.bidder.grid_bids(rnd.v_hat[..., gg.cols]) for gg in self.spec.groups], 2)
        a, p = reference_deviations(self.mech, cleared.extra["batch"], grid.reshape(R * B, n, -1))
        a, p = a.view(R, B, n, -1)[..., g.cols, :], p.view(R, B, n, -1)[..., g.cols, :]
        ctx = rnd.acted[g.index][0]
        return own, grid_feedback(rnd.v_hat[..., g.cols], a, p, ctx, rnd.mask[..., g.cols], g.bidder.C)

    def entry_gain(self, rnd, cleared):
        return cleared.gross.mean(1), rnd.entered

    def metrics(self, rnd, cleared):
        v, ent = rnd.values, rnd.entered.to(rnd.values.dtype)
        return {"revenue": cleared.payment.sum(-1).mean(-1),
                "welfare": (v * cleared.won).sum(-1).mean(-1),
                "mean_bid": cleared.extra["bids"].mean((1, 2)),
                "utility": (cleared.gross.mean(1) - ent * self.spec.entry_cost).mean(-1)}

    def record(self, rnd, cleared):
        return {"value": rnd.values.mean(1).double(), "bid": cleared.extra["bids"].mean(1).double(),
                "entered": rnd.entered, "won": cleared.won.mean(1).double(),
                "payment": cleared.payment.mean(1).double(),
                "utility": (cleared.gross.mean(1) - rnd.entered * self.spec.entry_cost).double()}


def _examples(device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    batch = AuctionBatch((torch.rand(32, 3, generator=g, dtype=dtype)).to(device),
                         (torch.rand(32, 3, generator=g) < 0.7).to(device),
                         torch.rand(32, 3, generator=g, dtype=dtype).to(device))
    return [Example("all_pay", AllPay(), batch, column_setter("bids"))]


ALL_PAY = Family(
    name="all_pay",
    kinds=("all_pay",),
    settings=AllPaySettings,
    adapter=AllPayAdapter,
    metrics=(MetricSpec("revenue", "revenue", "money", "revenue", compared=True),
             MetricSpec("welfare", "welfare", "money", "revenue"),
             MetricSpec("mean_bid", "mean bid", "money", "bids", compared=True),
             MetricSpec("utility", "utility", "money", None, compared=True)),
    panels=(Panel("revenue", "Revenue and welfare", "money"), Panel("bids", "Bids", "money")),
    examples=_examples,
    record=("value", "bid", "entered", "won", "payment", "utility"),
    citation="an all-pay auction, defined in tests/test_toy_family.py",
)

SCENARIO = {
    "name": "all-pay", "seed": 1, "steps": 60, "auctions_per_step": 16, "replicas": 2,
    "mechanism": {"kind": "all_pay"},
    "advertisers": [{"group": "bidders", "count": 2,
                     "value": {"dist": "uniform", "low": 0.0, "high": 1.0},
                     "strategy": {"kind": "hedge", "multipliers": {"low": 0.0, "high": 1.0, "n": 11}}}],
    "metrics": {"every": 5, "deviation_grid": {"low": 0.0, "high": 1.5, "n": 4}},
}


@pytest.fixture
def all_pay():
    register_family(ALL_PAY)
    yield ALL_PAY
    FAMILIES.pop("all_pay")


def test_the_toy_family_passes_the_contract(all_pay):
    check_family(all_pay)


def test_the_toy_family_validates_like_a_built_in_one(all_pay):
    sc = validate_scenario(SCENARIO)
    assert sc.mechanism.kind == "all_pay" and isinstance(sc.mechanism, AllPaySettings)
    with pytest.raises(ValueError, match=r"mechanism.reserve is not a setting of kind = 'all_pay'"):
        validate_scenario({**SCENARIO, "mechanism": {"kind": "all_pay", "reserve": 0.1}})
    with pytest.raises(ValueError, match=r"mechanism.kind = 'dutch': not one of .*all_pay"):
        validate_scenario({**SCENARIO, "mechanism": {"kind": "dutch"}})


def test_the_toy_family_runs_compares_and_reports(all_pay, tmp_path):
    res = run_scenario(validate_scenario(SCENARIO), tmp_path / "run")
    metrics = pd.read_parquet(res.folder / "metrics.parquet")
    agents = pd.read_parquet(res.folder / "agents.parquet")
    assert list(metrics.columns) == ["step", "replica", "revenue", "welfare", "mean_bid",
                                     "utility", "entry_rate_bidders"]
    # all-pay: revenue per auction is every entrant's payment, and each entrant pays its bid
    paid = agents.groupby(["step", "replica"])["payment"].sum().to_numpy()
    np.testing.assert_allclose(paid, metrics.sort_values(["step", "replica"])["revenue"], rtol=1e-6)
    np.testing.assert_allclose(agents["payment"], agents["bid"], rtol=1e-6)
    assert (res.folder / "figures" / "bids.png").exists()

    roles = make_roles(validate_scenario(SCENARIO), [(None, "truthful=truthful,half=multiplier:0.5")])
    analysis = run_compare(validate_scenario(SCENARIO), roles, tmp_path / "game", seeds=2,
                           workers=1, progress=False)
    assert pd.read_parquet(tmp_path / "game" / "game.parquet")["profile"].nunique() == 3
    # with two U[0, 1] bidders, bidding half the value strictly dominates bidding it: expected
    # payoffs -1/12 vs -1/6 against a truthful rival, 1/12 vs -1/24 against a halving one
    eqs = analysis["equilibria"]
    assert len(eqs) == 1 and eqs[0]["mixture"]["bidders"]["half"] > 0.99, eqs
    for folder in (res.folder, tmp_path / "game"):
        html, md = write_report(folder)
        text = md.read_text()
        assert "all-pay" in text and "mosaic" not in text.lower()
