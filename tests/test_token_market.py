"""The token auction as a market: its family is registered, its counterfactuals are consistent,
the payment rules' incentives show in the market, runs resume exactly, samples are readable, and
the shipped scenarios run (shrunk)."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_token_lm import tiny  # noqa: F401 (the tiny Llama fixture)

from genmarket.market.engine.market import Market
from genmarket.market.engine.seam import family_of
from genmarket.market.running.runner import Interrupted, run_scenario, run_variants
from genmarket.market.scenario import validate_scenario

ROOT = Path(__file__).resolve().parent.parent
GRID = {"low": 0.0, "high": 2.0, "n": 5}
TOKEN = {
    "name": "token-test",
    "seed": 2,
    "steps": 10,
    "auctions_per_step": 6,
    "replicas": 2,
    "dtype": "float64",
    "mechanism": {"kind": "token_linear", "payment": "vcg", "temperatures": [0.5, 2.0]},
    "language": {"backend": "synthetic", "topics": ["cooking", "travel"], "queries_per_topic": 2,
                 "length": 6},
    "feedback": {"kind": "full"},
    "advertisers": [
        {"group": "kitchen", "count": 2, "description": "kitchen appliances",
         "relevance": {"cooking": 0.9}, "value": {"dist": "uniform", "low": 0.5, "high": 1.5},
         "strategy": {"kind": "hedge", "multipliers": GRID, "eta": 0.3}},
        {"group": "airline", "count": 1, "description": "flights",
         "relevance": {"travel": 0.9}, "strategy": {"kind": "truthful"}},
    ],
    "metrics": {"every": 3, "deviation_grid": GRID, "samples": 2},
}


@pytest.fixture
def tok():
    return copy.deepcopy(TOKEN)


def run(d, tmp_path, name="run", **kw):
    return run_scenario(validate_scenario(d), tmp_path / name, figures=False, **kw)


def metrics(res) -> pd.DataFrame:
    m = pd.read_parquet(res.folder / "metrics.parquet")
    return m[m["revenue"].notna()]


def truthful(d):
    for g in d["advertisers"]:
        g["strategy"] = {"kind": "truthful"}
    return d


def test_the_family_is_registered_under_its_kinds():
    for kind in ("token_linear", "token_loglinear"):
        assert family_of(kind).name == "token"


def test_vcg_makes_truthful_bids_and_laws_optimal_at_every_step(tok, tmp_path):
    """VCG in distribution space: bidding m_i maximises each step's utility, the others fixed,
    so with everyone truthful no multiplier of the grid beats 1 (which is on it) and no tempered
    law beats the true one, summed along the reply (per-step exact)."""
    res = run(truthful(tok), tmp_path)
    m = metrics(res)
    assert len(m) > 0
    assert (m["misreport_gain"] <= 1e-9).all(), m["misreport_gain"].describe()
    assert (m["misreport_gain"] >= -1e-9).all()  # 1.0 is on the grid: the truthful bid itself
    assert (m["llm_misreport_gain"] <= 1e-9).all(), m["llm_misreport_gain"].describe()


def test_pay_as_bid_rewards_shading_and_revenue_adds_up(tok, tmp_path):
    """Pay-as-bid charges b_i per token whatever the influence: a lower multiplier on the grid
    beats the truthful bid. Revenue is the sum of the advertisers' recorded payments."""
    tok["mechanism"]["payment"] = "pay_as_bid"
    res = run(truthful(tok), tmp_path)
    m = metrics(res)
    assert (m["misreport_gain"] > 0).all() and (m["reply_misreport_gain"] > 0).all()
    a = pd.read_parquet(res.folder / "agents.parquet").dropna(subset=["payment"])
    pay = a.groupby(["step", "replica"])["payment"].sum().to_numpy()
    np.testing.assert_allclose(pay, m["revenue"].to_numpy(), rtol=1e-9)
    # pay-as-bid with truthful bids: each entrant pays m_i per token of the reply
    assert m["revenue_per_token"].gt(0).all()


def test_an_advertiser_out_of_the_market_pays_nothing_but_bears_the_reply(tok, tmp_path):
    tok["mechanism"]["payment"] = "second_price"
    tok["advertisers"][1]["entry"] = {"kind": "never"}
    res = run(tok, tmp_path)
    a = pd.read_parquet(res.folder / "agents.parquet").dropna(subset=["payment"])
    out = a[a["group"] == "airline"]
    assert len(out) > 0
    assert (out["payment"] == 0).all()
    assert (out["reply_value"] < 0).all()  # -sum_t m_i D_i(q_t): the reply was not its own LLM's
    assert (metrics(res)["entry_rate_airline"] == 0).all()


def test_replayed_utility_at_the_chosen_bid_is_the_realised_one(tok):
    """Along the realised reply, the summed step utility of the bid actually placed is the
    utility booked (value of the reply minus payment), for every advertiser; and the whole-reply
    re-generation at the truthful bid reproduces the realised reply for truthful bidders."""
    for payment in ("pay_as_bid", "vcg", "second_price"):
        d = truthful(copy.deepcopy(tok))
        d["mechanism"]["payment"] = payment
        model = Market(validate_scenario(d))
        ad = model.adapter
        captured = {}
        clear = ad.clear

        def spy(rnd, _clear=clear, _seen=captured):
            _seen["rnd"], _seen["c"] = rnd, _clear(rnd)
            return _seen["c"]

        ad.clear = spy
        model.step()  # round 1 collects
        rnd, c = captured["rnd"], captured["c"]
        dev = ad.deviation_utility(c)[..., -1]  # truthful multiplier 1.0, last column
        torch.testing.assert_close(dev, c.gross, rtol=1e-9, atol=1e-9)
        whole = ad.reply_deviation_utility(rnd, c)[..., -1]
        torch.testing.assert_close(whole, c.gross, rtol=1e-9, atol=1e-9)


def test_resume_after_interruption_is_exact(tok, tmp_path):
    tok["mechanism"]["payment"] = "second_price"
    tok["advertisers"][1]["entry"] = {"kind": "threshold", "alpha": 0.2, "initial": 1.0}
    tok["checkpoint_every"] = 3
    whole = run(tok, tmp_path, "whole")
    with pytest.raises(Interrupted):
        run(tok, tmp_path, "cut", stop_after=5)
    resumed = run(tok, tmp_path, "cut", resume=True)
    for name in ("metrics.parquet", "agents.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(whole.folder / name),
                                      pd.read_parquet(resumed.folder / name))
    assert (whole.folder / "samples.jsonl").read_text() == (
        resumed.folder / "samples.jsonl").read_text()


def test_samples_hold_the_replies_with_text_and_payments(tok, tmp_path):
    res = run(tok, tmp_path)
    lines = [json.loads(x) for x in (res.folder / "samples.jsonl").read_text().splitlines()]
    assert lines
    for rec in lines:
        assert rec["reply"] and isinstance(rec["reply"], str)
        assert rec["length"] == len(rec["tokens"]) >= 1
        assert rec["revenue"] == pytest.approx(sum(e["payment"] for e in rec["entrants"]),
                                               abs=1e-5)
        for e in rec["entrants"]:
            assert {"name", "group", "value", "bid", "payment", "reply_value", "mentioned"} <= set(e)
            assert e["payment"] >= 0 and e["reply_value"] <= 1e-9


def test_metrics_are_in_range(tok, tmp_path):
    tok["mechanism"]["payment"] = "second_price"
    m = metrics(run(tok, tmp_path))
    for col in ("exposure_rate", "entry_rate", "mention_share_kitchen"):
        assert m[col].dropna().between(0, 1).all(), col
    assert m["spend_length_corr"].dropna().between(-1 - 1e-9, 1 + 1e-9).all()
    assert (m["kl_ref"] >= -1e-9).all() and (m["welfare"] <= 1e-9).all()
    shares = m[["mention_share_kitchen", "mention_share_airline"]].dropna()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_a_variant_that_switches_mechanism_kind_replaces_the_mechanism_table(tok):
    """Without the replacement the token settings (payment, temperatures) would be merged into
    MOSAIC's [mechanism] and refused."""
    tok["variants"] = [{"name": "token"},
                       {"name": "mosaic", "mechanism": {"kind": "mosaic", "candidates": 4}},
                       {"name": "sp", "mechanism": {"payment": "second_price"}}]
    subs = dict(validate_scenario(tok).variant_scenarios())
    assert subs["mosaic"].mechanism.kind == "mosaic" and subs["mosaic"].mechanism.candidates == 4
    assert subs["sp"].mechanism.temperatures == [0.5, 2.0]  # same kind: merged key by key


def _shrunk(path: str, **over) -> dict:
    d = tomllib.loads((ROOT / "scenarios" / path).read_text())
    d.update(steps=4, auctions_per_step=4, replicas=1, **over)
    d["metrics"]["every"] = 2
    d["language"]["queries_per_topic"] = 2
    d["language"]["length"] = 5
    return d


@pytest.mark.parametrize("path", ["token_market.toml", "token_vs_mosaic.toml"])
def test_the_shipped_scenarios_run_shrunk(path, tmp_path):
    sc = validate_scenario(_shrunk(path))
    run_variants(sc, tmp_path / "out", figures=False)
    names = [n for n, _ in sc.variant_scenarios()]
    comparison = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert set(comparison) == set(names)
    for n in names:
        m = pd.read_parquet(tmp_path / "out" / n / "metrics.parquet")
        assert m["revenue"].notna().any()


def test_a_market_on_a_transformers_model_books_what_its_replay_finds(tiny, tmp_path):  # noqa: F811
    """The hf path end to end on a tiny Llama: the counterfactual replies restart the key/value
    cache (`start` again), so the replay at the bid placed and the whole-reply re-generation at
    the truthful bid must give the booked utility; samples decode the model's text."""
    d = truthful(copy.deepcopy(TOKEN))
    d.update(steps=2, auctions_per_step=2, replicas=1)
    d["mechanism"] = {"kind": "token_linear", "payment": "second_price", "temperatures": [0.5]}
    d["language"] = {"backend": "hf", "model": str(tiny[0]), "topics": ["cooking", "travel"],
                     "queries_per_topic": 1, "length": 3}
    d["metrics"] = {"every": 1, "deviation_grid": {"low": 0.5, "high": 1.5, "n": 3},
                    "samples": 1}
    model = Market(validate_scenario(d))
    ad, captured, clear = model.adapter, {}, model.adapter.clear

    def spy(rnd):
        captured["rnd"], captured["c"] = rnd, clear(rnd)
        return captured["c"]

    ad.clear = spy
    model.step()
    rnd, c = captured["rnd"], captured["c"]
    torch.testing.assert_close(ad.deviation_utility(c)[..., -1], c.gross, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(ad.reply_deviation_utility(rnd, c)[..., -1], c.gross, rtol=1e-7,
                               atol=1e-7)
    res = run(d, tmp_path)
    rec = json.loads((res.folder / "samples.jsonl").read_text().splitlines()[0])
    assert isinstance(rec["reply"], str) and 1 <= rec["length"] <= 3


def test_a_variants_table_of_two_families_speaks_each_ones_words():
    from genmarket.market.reports.text import variants_table

    families = {"token": family_of("token_linear"), "mosaic": family_of("mosaic")}
    comparison = {"token": {"metrics": {"revenue": 1.0, "revenue_per_token": 0.5}},
                  "mosaic": {"metrics": {"revenue": 2.0, "logp_opt": -3.0}}}
    t = variants_table(comparison, families["token"], families).set_index("metric")
    assert t.loc["revenue per reply", "unit"] == "money units / reward units per auction"
    assert t.loc["log π_r(returned reply)", "unit"] == "nats"  # MOSAIC's own words
    assert t.loc["log π_r(returned reply)", "token"] == "n/a"
    assert t.loc["revenue per token", "mosaic"] == "n/a"


def test_settings_errors_name_the_field(tok):
    bad = copy.deepcopy(tok)
    bad["mechanism"]["min_length"] = 9
    with pytest.raises(ValueError, match=r"mechanism.min_length = 9: must be <= language.length"):
        validate_scenario(bad)
    bad = copy.deepcopy(tok)
    bad["advertisers"][0]["report"] = {"kind": "truthful"}
    with pytest.raises(ValueError, match=r"advertisers\[0\].report"):
        validate_scenario(bad)


def test_the_memory_estimate_grows_with_the_grids_and_the_loglinear_scan(tok):
    from genmarket.mechanisms.token.settings import round_numbers

    base = round_numbers(validate_scenario(tok))
    wide = copy.deepcopy(tok)
    wide["metrics"]["deviation_grid"] = {"low": 0.0, "high": 2.0, "n": 21}
    scan = copy.deepcopy(tok)
    scan["mechanism"].update(kind="token_loglinear", payment="second_price")
    assert round_numbers(validate_scenario(wide)) > base
    assert round_numbers(validate_scenario(scan)) > base
