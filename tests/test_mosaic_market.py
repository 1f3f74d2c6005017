"""The repeated MOSAIC market: the outside option, exact counterfactuals, incentives, resume."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genmarket.market.engine.market import Market
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import ScenarioError, validate_scenario
from genmarket.mechanisms.mosaic import MosaicBatch
from genmarket.mechanisms.mosaic.worlds import pearson

ROOT = Path(__file__).resolve().parent.parent

HEDGE = {"kind": "hedge", "multipliers": {"low": 0.25, "high": 2.0, "n": 8}, "eta": 0.3}
MOSAIC = {
    "name": "mosaic-test",
    "seed": 4,
    "steps": 30,
    "auctions_per_step": 8,
    "replicas": 2,
    "dtype": "float64",
    "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": True, "candidates": 6,
                  "generator": "context"},
    "language": {"backend": "synthetic", "topics": ["cooking", "travel"], "queries_per_topic": 3,
                 "length": 8},
    "feedback": {"kind": "full"},
    "advertisers": [
        {"group": "kitchen", "count": 2, "description": "kitchen appliances",
         "relevance": {"cooking": 0.9}, "strategy": HEDGE},
        {"group": "airline", "count": 1, "description": "flights",
         "relevance": {"travel": 0.9}, "strategy": {"kind": "truthful"}},
    ],
    "metrics": {"every": 5, "deviation_grid": {"low": 0.25, "high": 2.0, "n": 8}},
}


@pytest.fixture
def mosaic_dict():
    return copy.deepcopy(MOSAIC)


def run(d, tmp_path, name="run", **kw):
    return run_scenario(validate_scenario(d), tmp_path / name, figures=False, **kw)


def test_truthful_reports_are_never_beaten_and_learners_find_them(mosaic_dict, tmp_path):
    """Theorem 5.1 in the market: 1.0 is on the deviation grid, so the best grid utility equals
    the truthful one (misreport gain 0 up to rounding) in every collected round; Hedge learners
    fed the exact utility of every multiplier end up reporting the truth."""
    mosaic_dict["steps"] = 120
    res = run(mosaic_dict, tmp_path)
    m = pd.read_parquet(res.folder / "metrics.parquet")
    assert (m["misreport_gain"].abs() < 1e-8).all(), m["misreport_gain"].describe()
    assert abs(res.summary["metrics"]["mean_report_ratio"] - 1.0) < 0.02
    assert m["revenue"].notna().all() and np.isfinite(m["logp_opt"]).all()


def test_shifted_reports_change_nothing_with_the_offset(mosaic_dict, tmp_path):
    """r_hat = r + s shifts every score by s/tau (softmax unchanged) and, with the offset, shifts
    each advertiser's LSE term and offset alike: allocation, payments and utilities all stay."""
    mosaic_dict["advertisers"][0]["strategy"] = {"kind": "truthful"}
    base = run(mosaic_dict, tmp_path, "a")
    a = pd.read_parquet(base.folder / "metrics.parquet")
    for s in (3.5, -3.5):  # a negative shift too: reports are not bids, nothing clamps at 0
        mosaic_dict["advertisers"][0]["strategy"] = {"kind": "shift", "s": s}
        shifted = run(mosaic_dict, tmp_path, f"b{s}")
        b = pd.read_parquet(shifted.folder / "metrics.parquet")
        for col in ("revenue", "welfare", "utility", "reward_gain", "utility_gain", "logp_opt",
                    "mean_report_ratio"):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-9, err_msg=(s, col))


def random_round(model, seed):
    """Random queries [RB], candidate uniforms [RB, M, L], outcome noise [RB], a participation
    mask [RB, n] and unit reward scales [R, B, n] for `model`'s shapes."""
    R, B, n, M, L = model.R, model.B, model.n, model.M, model.L
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, model.Q, (R * B,), generator=g)
    u = torch.rand(R * B, M, L, generator=g, dtype=torch.float64)
    noise = torch.rand(R * B, generator=g, dtype=torch.float64)
    mask = torch.rand(R * B, n, generator=g) < 0.6
    return q, u, noise, mask, torch.ones(R, B, n, dtype=torch.float64)


def test_outside_option_is_the_reward_of_the_reply_made_without_the_advertiser(mosaic_dict):
    """The toggled worlds match a direct computation: regenerate without advertiser i's
    description, run the mechanism without i, take i's expected true reward."""
    model = Market(validate_scenario(mosaic_dict)).adapter
    n, M = model.n, model.M
    q, u, noise, mask, m = random_round(model, 0)
    scale = m.clone()
    cand = model._candidates(q, mask, u)
    flat = m.reshape(-1, n)
    reward, gross = model._own_worlds(q, cand, mask, u, flat, scale.reshape(-1, n), noise)
    for i in range(n):
        flipped = mask.clone()
        flipped[:, i] = ~flipped[:, i]
        c = model.backend.candidates(q, model.slots, flipped, M, u)
        batch = MosaicBatch(c.rewards, flipped, c.log_ref, c.log_gen, noise)
        out = model.mechanism.run(batch)
        r_i = (out.allocation * c.rewards[:, i]).sum(-1)
        torch.testing.assert_close(reward[:, i], r_i)
        torch.testing.assert_close(gross[:, i], r_i - out.payment[:, i])
        assert (out.payment[~flipped[:, i], i] == 0).all()


def test_reference_generator_outside_option_uses_the_same_candidates(mosaic_dict):
    mosaic_dict["mechanism"]["generator"] = "reference"
    model = Market(validate_scenario(mosaic_dict)).adapter
    q, u, noise, mask, m = random_round(model, 1)
    mask = torch.ones_like(mask)
    cand = model._candidates(q, mask, u)
    flat = m.reshape(-1, model.n)
    reward, _ = model._own_worlds(q, cand, mask, u, flat, flat, noise)
    batch = MosaicBatch(cand.rewards, mask, cand.log_ref, cand.log_gen, noise)
    torch.testing.assert_close(reward, model.mechanism.absent_rewards(batch, cand.rewards))


def test_metrics_are_finite_and_in_range(mosaic_dict, tmp_path):
    res = run(mosaic_dict, tmp_path)
    m = pd.read_parquet(res.folder / "metrics.parquet")
    assert len(m) == (1 + 30 // 5) * 2  # round 1, then every 5th
    assert ((m["kl_ref"] > -1e-9) | (m["kl_ref"].abs() < 1e-6)).all() or m["kl_ref"].mean() > 0
    assert m["gain_correlation"].between(-1, 1).all()
    assert m["ir_share"].between(0, 1).all()
    assert m["entry_rate_relevant"].eq(1.0).all()
    a = pd.read_parquet(res.folder / "agents.parquet")
    assert {"value", "report", "entered", "reward", "payment", "utility"} <= set(a.columns)
    # the ledger adds up to the per-round records' scale: payments equal revenue in total
    model_pay = a.groupby(["step", "replica"])["payment"].sum().to_numpy()
    np.testing.assert_allclose(model_pay, m["revenue"].to_numpy(), rtol=1e-9)


def test_resume_after_interruption_repeats_and_loses_nothing(mosaic_dict, tmp_path):
    mosaic_dict["advertisers"][0]["entry"] = {"kind": "threshold", "alpha": 0.2, "initial": 1.0}
    mosaic_dict["checkpoint_every"] = 5
    whole = run(mosaic_dict, tmp_path, "whole")
    with pytest.raises(Interrupted):
        run(mosaic_dict, tmp_path, "cut", stop_after=17)
    resumed = run(mosaic_dict, tmp_path, "cut", resume=True)
    a = pd.read_parquet(whole.folder / "metrics.parquet")
    b = pd.read_parquet(resumed.folder / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_entry_learners_compare_against_the_outside_option(mosaic_dict, tmp_path):
    """An advertiser with a huge entry cost learns to stay out even though staying out still
    earns it a (negative) reward; with no cost, the relevant ones stay in."""
    mosaic_dict["steps"] = 150
    for g in mosaic_dict["advertisers"]:
        g["strategy"] = {"kind": "truthful"}
        g["entry"] = {"kind": "learned", "learner": {"kind": "hedge", "eta": 0.5}}
    mosaic_dict["advertisers"][1]["entry_cost"] = 1e3
    res = run(mosaic_dict, tmp_path)
    groups = res.summary["groups"]
    assert groups["airline"]["entry_rate"] < 0.05
    assert groups["kitchen"]["entry_rate"] > 0.9


def test_pearson_matches_numpy():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(3, 40, generator=g, dtype=torch.float64), torch.randn(3, 40, generator=g,
                                                                               dtype=torch.float64)
    w = (torch.rand(3, 40, generator=g) < 0.7).double()
    got = pearson(x, y + 0.5 * x, w)
    for r in range(3):
        keep = w[r].bool().numpy()
        want = np.corrcoef(x[r].numpy()[keep], (y[r] + 0.5 * x[r]).numpy()[keep])[0, 1]
        assert math.isclose(float(got[r]), want, rel_tol=1e-9)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.pop("language"), "language: required by mechanism.kind = 'mosaic'"),
    (lambda d: d["advertisers"][0].update(relevance={"sports": 0.5}),
     "advertisers[0].relevance.sports: not one of the topics (cooking, travel)"),
    (lambda d: d["mechanism"].update(reserve=0.1),
     "mechanism.reserve is not a setting of kind = 'mosaic'"),
    (lambda d: d["language"].update(backend="gpt9"), "language.backend = 'gpt9': not one of"),
    (lambda d: d["mechanism"].update(tau=-1.0), "mechanism.tau = -1.0: must be > 0"),
    (lambda d: d["mechanism"].update(generator="oracle"), "mechanism.generator = 'oracle'"),
    (lambda d: d["advertisers"][0].update(report={"kind": "truthful"}),
     "advertisers[0].report: MOSAIC advertisers report rewards themselves"),
    (lambda d: d["language"].update(model="x"), "language.model = 'x': only read by"),
    (lambda d: d.update(variants=[{"name": "v", "mechanism": {"tau": float("nan")}}]),
     "variants[0] (v): mechanism.tau"),
    (lambda d: d["advertisers"][0].update(names=["a"]), "names has 1 entries: must have count = 2"),
])
def test_bad_mosaic_scenarios_are_one_clear_error(mosaic_dict, edit, expected):
    edit(mosaic_dict)
    with pytest.raises(ScenarioError) as info:
        validate_scenario(mosaic_dict)
    assert len(info.value.problems) == 1, info.value.problems
    assert expected in info.value.problems[0], info.value.problems[0]


def test_classic_mechanisms_reject_mosaic_settings(scenario_dict):
    scenario_dict["mechanism"]["tau"] = 2.0
    with pytest.raises(ScenarioError, match="mechanism.tau is not a setting of kind"):
        validate_scenario(scenario_dict)


def test_variants_run_into_sub_folders_and_compare(mosaic_dict, tmp_path):
    mosaic_dict["steps"] = 10
    mosaic_dict["variants"] = [{"name": "offset", "mechanism": {"offset": True}},
                               {"name": "no_offset", "mechanism": {"offset": False}}]
    res = run_scenario(validate_scenario(mosaic_dict), tmp_path / "v", figures=True)
    assert set(res.summary) == {"offset", "no_offset"}
    for name in ("offset", "no_offset"):
        manifest = json.loads((tmp_path / "v" / name / "manifest.json").read_text())
        assert manifest["scenario"]["mechanism"]["offset"] == (name == "offset")
    assert (tmp_path / "v" / "figures" / "comparison.png").stat().st_size > 0
    cmp = json.loads((tmp_path / "v" / "comparison.json").read_text())
    # same candidates and reports: the allocation and rewards agree, only payments differ
    a, b = cmp["offset"]["metrics"], cmp["no_offset"]["metrics"]
    assert math.isclose(a["welfare"], b["welfare"], rel_tol=1e-9)
    assert a["revenue"] != b["revenue"]


def test_cli_runs_the_quickstart(tmp_path):
    out = tmp_path / "q"
    res = subprocess.run(
        [sys.executable, "-m", "genmarket.market.cli", "run", str(ROOT / "scenarios" / "quickstart.toml"),
         "--out", str(out), "--steps", "30", "--replicas", "1", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not (out / "figures/entry.png").exists()  # every advertiser always enters
    for f in ("metrics.parquet", "agents.parquet", "summary.json", "figures/gains.png",
              "figures/quality.png", "figures/kl.png"):
        assert (out / f).stat().st_size > 0, f


def test_a_plugin_backend_passes_validation(mosaic_dict, monkeypatch):
    """A backend under the `genmarket.backends` entry points (which get_backend loads) is a valid
    `language.backend`; an unknown name still is not."""
    import importlib.metadata

    real = importlib.metadata.entry_points
    plugin = importlib.metadata.EntryPoint("mine", "my_pkg:MyBackend", "genmarket.backends")

    def entry_points(**kw):
        found = real(**kw)
        return (*found, plugin) if kw.get("group") == "genmarket.backends" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    mosaic_dict["language"]["backend"] = "mine"
    assert validate_scenario(mosaic_dict).language.backend == "mine"
    mosaic_dict["language"]["backend"] = "gpt9"
    with pytest.raises(ScenarioError, match="not one of .*mine"):
        validate_scenario(mosaic_dict)
