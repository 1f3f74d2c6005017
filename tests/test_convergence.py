"""Convergence diagnostics: the window's empirical regret against a brute-force recomputation,
the bid function of a known policy, window payoffs against the collected rows, resume and
extension, and the verdicts on learners that have and have not converged."""

import numpy as np
import pandas as pd
import pytest
import torch

from genmarket.market.engine.convergence import window_start
from genmarket.market.engine.market import Market
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import validate_scenario


def _run(data, tmp_path, name="run", **kw):
    return run_scenario(validate_scenario(data), tmp_path / name, figures=False, **kw)


@pytest.mark.parametrize("feedback, buckets", [("full", 1), ("full", 3), ("bandit", 2)])
def test_window_regret_matches_brute_force_second_price(scenario_dict, feedback, buckets):
    """Second price, closed form: an advertiser bidding m * v against the others' highest bid o
    wins when m * v > o and pays o. Recompute every grid action's utility on the window's
    auctions from the bids the market placed, take the best fixed action per value bucket, and
    compare with the engine's regret (also under bandit feedback, where the adapter computes the
    grid for the diagnostics alone)."""
    d = scenario_dict
    d.update(steps=30, auctions_per_step=24, replicas=2, dtype="float64")
    d["feedback"] = {"kind": feedback}
    grid = {"low": 0.1, "high": 1.5, "n": 8}  # no zero bid: no ties between bids of 0
    kind = "hedge" if feedback == "full" else "exp3"
    d["advertisers"][0]["strategy"] = {"kind": kind, "multipliers": grid, "buckets": buckets}
    model = Market(d)
    seen = []
    clear = model.adapter.clear

    def spy(rnd):
        cleared = clear(rnd)
        if rnd.window:
            seen.append((rnd.values.clone(), rnd.acted[0][0].clone(), rnd.acted[0][2].clone(),
                         cleared.gross.clone()))
        return cleared

    model.adapter.clear = spy
    while model.running:
        model.step()
    assert len(seen) == 30 - window_start(30) == 3
    points = torch.linspace(0.1, 1.5, 8, dtype=torch.float64)
    R, A, C = 2, 3, buckets
    best = torch.zeros(R, A, C, 8, dtype=torch.float64)
    own = torch.zeros(R, A, C, dtype=torch.float64)
    count = torch.zeros(R, A, C, dtype=torch.float64)
    for v, ctx, bids, gross in seen:
        for i in range(A):
            others = torch.cat([bids[..., :i], bids[..., i + 1:]], -1).max(-1).values  # [R, B]
            u = torch.where(points * v[..., i, None] > others[..., None],
                            v[..., i, None] - others[..., None], torch.zeros(()))  # [R, B, K]
            onehot = torch.nn.functional.one_hot(ctx[..., i], C).double()  # [R, B, C]
            best[:, i] += torch.einsum("rbc,rbk->rck", onehot, u)
            own[:, i] += torch.einsum("rbc,rb->rc", onehot, gross[..., i])
            count[:, i] += onehot.sum(1)
    expected = (best.max(-1).values - own).sum(-1) / count.sum(-1)
    (diag,) = model.diagnostics.convergence(model.steps)
    torch.testing.assert_close(diag["regret"], expected, rtol=1e-9, atol=1e-12)
    assert diag["observations"].tolist() == [[72.0] * 3] * 2


def test_bid_function_of_a_uniform_policy_is_the_grid_mean(scenario_dict):
    """Hedge starts uniform: over a one-round window at round 1 its mean policy is uniform, so
    every bucket's expected multiplier is the mean of the grid."""
    d = scenario_dict
    d.update(steps=1)
    d["metrics"]["every"] = 1
    d["advertisers"][0]["strategy"] = {"kind": "hedge", "buckets": 4,
                                       "multipliers": {"low": 0.2, "high": 1.4, "n": 13}}
    model = Market(d)
    model.step()
    (fn,) = model.diagnostics.bid_function()
    assert torch.allclose(fn["action"], torch.full_like(fn["action"], 0.8), atol=1e-6)
    assert fn["low"] == [0.0, 0.25, 0.5, 0.75] and fn["high"] == [0.25, 0.5, 0.75, 1.0]
    assert fn["count"].sum().item() == 2 * 16 * 3  # every auction of the round, once


def test_window_payoffs_are_every_round_of_the_window(scenario_dict, tmp_path):
    """With metrics collected every round, the mean of agents.parquet's per-round utilities over
    the window equals window.parquet's (a different path: the adapter's record vs the ledger);
    with collection every 7 rounds the collected rounds are a subset and differ."""
    d = scenario_dict
    d.update(steps=40)
    d["metrics"]["every"] = 1
    res = _run(d, tmp_path)
    agents = pd.read_parquet(res.folder / "agents.parquet")
    lo = window_start(40)
    rows = agents[agents["step"] > lo].groupby(["replica", "agent"])["utility"].mean()
    window = pd.read_parquet(res.folder / "window.parquet").set_index(["replica", "agent"])
    assert (window["rounds"] == 40 - lo).all()
    np.testing.assert_allclose(window["utility"].sort_index(), rows.sort_index(), rtol=1e-6)
    assert (window["auctions"] == (40 - lo) * 16).all()


def test_convergence_survives_resume_inside_the_window(scenario_dict, tmp_path):
    d = scenario_dict
    d.update(steps=60, checkpoint_every=3)
    whole = _run(d, tmp_path, "whole")
    with pytest.raises(Interrupted):
        _run(d, tmp_path, "cut", stop_after=58)  # last checkpoint at 57, inside the window
    resumed = _run(d, tmp_path, "cut", resume=True)
    assert resumed.resumed_from == 57
    assert resumed.summary["convergence"] == whole.summary["convergence"]
    assert resumed.summary["bid_function"] == whole.summary["bid_function"]
    for name in ("window.parquet", "bid_function.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(whole.folder / name),
                                      pd.read_parquet(resumed.folder / name))


def test_extending_past_the_window_start_says_so(scenario_dict, tmp_path):
    d = scenario_dict
    d.update(steps=50)
    _run(d, tmp_path)
    d.update(steps=52)  # new window 48..52 started before the checkpoint at 50
    res = _run(d, tmp_path, resume=True)
    conv = res.summary["convergence"]
    assert conv["available"] is False and conv["converged"] is None
    assert "extended" in conv["why"]
    assert not (res.folder / "window.parquet").exists()  # the first run's window is stale
    assert res.summary["bid_function"] == {}
    d.update(steps=200)  # window 181..200: tracked from its start
    res = _run(d, tmp_path, resume=True)
    assert res.summary["convergence"]["available"] is True


def test_verdicts_separate_converged_from_still_learning(scenario_dict, tmp_path):
    """Second price against itself with full feedback: Hedge with a large step size settles
    (policy still, regret a small share of the grid's spread); with a tiny step size after
    40 rounds it is still nearly uniform over [0, 1.5], far from the best fixed multiplier."""
    d = scenario_dict
    d.update(steps=600, auctions_per_step=64)
    d["advertisers"][0]["strategy"] = {"kind": "hedge", "eta": 2.0,
                                       "multipliers": {"low": 0.0, "high": 1.5, "n": 16}}
    settled = _run(d, tmp_path, "settled").summary["convergence"]
    d.update(steps=40)
    d["advertisers"][0]["strategy"]["eta"] = 1e-4
    young = _run(d, tmp_path, "young").summary["convergence"]
    s, y = settled["policies"]["bidders.bidder"], young["policies"]["bidders.bidder"]
    assert settled["converged"] and s["tv"] <= 0.05 and s["regret_share"] <= 0.05, s
    assert not young["converged"] and y["regret_share"] > 0.2, y


def test_fixed_strategies_have_nothing_to_converge(scenario_dict, tmp_path):
    d = scenario_dict
    d["advertisers"][0]["strategy"] = {"kind": "multiplier", "a": 0.9}
    res = _run(d, tmp_path)
    assert res.summary["convergence"]["policies"] == {}
    assert res.summary["convergence"]["converged"] is True
    assert res.summary["bid_function"] == {}


def test_learned_entry_is_tracked_against_always_and_never(scenario_dict, tmp_path):
    """A learned entry rule with an entry cost above any possible gain (values <= 1, cost 2):
    staying out is the best fixed action, so its regret is the realised loss of the rounds it
    entered, and the regret share is that loss over the gain's magnitude: between 0 and 1."""
    d = scenario_dict
    d.update(steps=60)
    d["advertisers"][0]["entry"] = {"kind": "learned", "learner": {"kind": "hedge", "eta": 0.5}}
    d["advertisers"][0]["entry_cost"] = 2.0
    model = Market(d)
    while model.running:
        model.step()
    entry = next(x for x in model.diagnostics.convergence(model.steps) if x["role"] == "entry")
    track = model.diagnostics.entry_tracks[0]
    assert (track.gain < 0).all()  # entering always loses
    torch.testing.assert_close(entry["regret"], -track.realised / track.rounds)
    assert ((entry["regret_share"] >= 0) & (entry["regret_share"] <= 1)).all()
    assert (entry["observations"] == 60 - window_start(60)).all()  # full feedback: every round
    p = model.groups[0].entry.enter_probability(model.steps)
    torch.testing.assert_close(entry["tv"], (p.double() - track.start).abs())


def test_a_game_says_which_profiles_have_learners_that_did_not_converge(tmp_path):
    """Two players choose between bidding truthfully and a slow Hedge learner that is still
    near-uniform after 30 rounds: the profile of two truthful players has no learner; the two
    with a learner have not converged, and analysis.json says so with their numbers."""
    from genmarket.market.games.compare import run_compare
    from genmarket.market.games.roles import make_roles

    sc = validate_scenario({
        "name": "g", "steps": 30, "auctions_per_step": 16, "mechanism": {"kind": "second_price"},
        "advertisers": [{"group": "bidders", "count": 2,
                         "value": {"dist": "uniform", "low": 0.0, "high": 1.0}}],
        "metrics": {"every": 5}})
    roles = make_roles(sc, [(None, "t=truthful,learn=hedge:eta=0.0001")])
    analysis = run_compare(sc, roles, tmp_path / "g", seeds=2)
    conv = analysis["convergence"]
    assert conv["profiles_with_learners"] == 2 and conv["converged"] == 0
    assert {b["profile"] for b in conv["not_converged"]} == {"bidders-t-1-learn-1",
                                                             "bidders-learn-2"}
    assert all(b["regret_share"] > 0.05 for b in conv["not_converged"])


def test_bandit_entry_regret_is_not_observable_and_says_why(scenario_dict, tmp_path):
    """Under bandit feedback an entry rule sees its gain only on rounds it entered, so regret
    against always/never entering cannot be known: reported as None with the reason, and the
    verdict rests on the movement alone."""
    d = scenario_dict
    d.update(steps=60)
    d["feedback"] = {"kind": "bandit"}
    d["advertisers"][0]["strategy"] = {"kind": "exp3", "multipliers": {"low": 0.0, "high": 1.5,
                                                                       "n": 16}}
    d["advertisers"][0]["entry"] = {"kind": "learned", "learner": {"kind": "exp3", "eta": 0.5}}
    d["advertisers"][0]["entry_cost"] = 0.05
    conv = _run(d, tmp_path).summary["convergence"]
    entry = conv["policies"]["bidders.entry"]
    assert entry["regret"] is None and entry["regret_share"] is None
    assert "bandit" in entry["regret_note"]
    assert entry["converged"] == (entry["tv"] <= 0.05)
    assert conv["policies"]["bidders.bidder"]["regret_share"] is not None  # the grid is computed
