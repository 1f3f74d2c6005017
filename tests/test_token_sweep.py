"""The token auction's bid sweep: at relative bid 0 and 1 the replies are those of the other
advertiser and of the swept one alone (exactly, on the same uniforms); raising the bid moves the
aggregate toward the swept advertiser's law (exactly, at a fixed prefix) and its mention rate up
(within the binomial intervals); the run folder, summary, table and report render, and reply
text is escaped in the report."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from genmarket.market.reports.document import Doc
from genmarket.market.scenario import validate_scenario
from genmarket.mechanisms.backends.text.base import AdvertiserProfile, Query, TextWorld
from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend
from genmarket.mechanisms.token import TokenBatch, TokenLinear, TokenLogLinear, generate
from genmarket.mechanisms.token.aggregate import divergence
from genmarket.mechanisms.token.sweep import (
    BidSweep,
    check_sweep,
    run_bid_sweep,
    sweep_replies,
    wilson,
)
from genmarket.mechanisms.token.sweep_report import (
    sample_table,
    sweep_report,
    sweep_sentences,
    sweep_table,
)
from genmarket.mechanisms.token.synthetic import SyntheticTokenLM

WORLD = TextWorld(
    topics=("travel",), queries=(Query("Vacations in Hawaii", "travel"),),
    advertisers=(AdvertiserProfile("Alpha Airlines", "an airline flying to Hawaii", {"travel": 0.9}),
                 AdvertiserProfile("Beta Resort", "a resort on a Hawaiian beach", {"travel": 0.9})))
ADV, Q = torch.tensor([0, 1]), torch.tensor([0])


def lm(seed: int = 0, length: int = 8) -> SyntheticTokenLM:
    return SyntheticTokenLM(SyntheticTextBackend(WORLD, dtype=torch.float64, seed=seed,
                                                 length=length))


def uniforms(R: int, L: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, R, L, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("rule", ["linear", "loglinear"])
def test_bid_zero_and_one_give_the_single_advertisers_replies(rule):
    model, u = lm(), uniforms(64, 8)
    out = sweep_replies(model, rule, Q, ADV, 0, [0.0, 1.0], u, total_bid=2.0)
    cls = TokenLinear if rule == "linear" else TokenLogLinear
    for s, alone in ((0, 1), (1, 0)):  # bid 0: Beta alone; bid 1: Alpha alone
        mask = torch.zeros(64, 2, dtype=torch.bool)
        mask[:, alone] = True
        bids = torch.zeros(64, 2, dtype=torch.float64)
        bids[:, alone] = 2.0
        ref = generate(model, cls(), Q.repeat(64), ADV.expand(64, 2), bids, mask, u[0])
        assert torch.equal(out["tokens"][s, 0], ref.tokens)
        assert torch.equal(out["mentions"][s, 0], ref.mentions)
    assert (out["payment"][0, :, :, 0] == 0).all()  # bidding 0 pays nothing, every rule
    assert (out["payment"][1, :, :, 1] == 0).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 50), rule=st.sampled_from(["linear", "loglinear"]),
       b0=st.sampled_from([0.0, 0.3]))
def test_raising_the_relative_bid_moves_the_aggregate_toward_the_swept_law(seed, rule, b0):
    """At a fixed prefix (the first step), D_swept(q) is non-increasing along the grid and D of
    the other advertiser non-decreasing (monotone aggregation, seed 004)."""
    model = lm(seed % 7)
    shares = torch.linspace(0, 1, 11, dtype=torch.float64)
    logp = model.logprobs(model.start(Q.repeat(11), ADV.expand(11, 2)))
    bids = torch.stack([shares, 1 - shares], -1)
    cls = TokenLinear if rule == "linear" else TokenLogLinear
    batch = TokenBatch(logp[:, :2], bids, torch.ones(11, 2, dtype=torch.bool), logp[:, 2],
                       torch.full((11,), 0.5, dtype=torch.float64))
    q = cls(reference_weight=b0).run(batch).logq
    d = divergence(logp[:, :2], q.unsqueeze(1), rule)  # [11, 2]
    assert (d[1:, 0] <= d[:-1, 0] + 1e-9).all()
    assert (d[1:, 1] >= d[:-1, 1] - 1e-9).all()


@pytest.mark.parametrize("rule", ["linear", "loglinear"])
def test_mention_rate_rises_with_the_bid_within_the_binomial_intervals(rule):
    R, grid = 150, [0.0, 0.5, 1.0]
    out = sweep_replies(lm(), rule, Q, ADV, 0, grid, uniforms(R, 8, seed=1), payments=["vcg"])
    k = out["mentions"][:, 0, :, 0].sum(-1).numpy()  # Alpha's mentions per bid
    lo, hi = wilson(k, np.full(3, R))
    assert lo[-1] > hi[0]  # at bid 1 significantly above bid 0
    for a in range(2):  # never significantly down from one grid bid to the next
        assert hi[a + 1] >= lo[a]
    assert (out["payment"][:, 0, :, 0, 0] >= 0).all()


def test_wilson_interval_closed_form():
    lo, hi = wilson(np.array([0, 10, 5]), np.array([10, 10, 10]))
    assert lo[0] == 0 and hi[2] > 0.5 > lo[2] and hi[1] == pytest.approx(1)
    np.testing.assert_allclose(hi[0], 3.8415 / (10 + 3.8415), rtol=1e-4)  # z^2 / (n + z^2)
    np.testing.assert_allclose(lo + hi[[1, 0, 2]], 1.0)  # symmetric: lo(k) = 1 - hi(n - k)


# ----- the run folder, summary, table and report


def scenario(**ex):
    """A validated bid-sweep scenario on the test world (its two advertisers, Alpha's group
    `Alpha`), with `[experiment]` settings `ex`."""
    data = {
        "name": "sweep-test", "seed": 3, "dtype": "float64",
        "mechanism": {"kind": "token_linear", "payment": "second_price"},
        "language": {"topics": ["travel"], "length": 6, "queries": [
            {"text": "Vacations in Hawaii", "topic": "travel"},
            {"text": "A <b>quiet</b> beach | cheap?", "topic": "travel"}]},
        "experiment": {"kind": "bid_sweep", **ex},
        "advertisers": [{"group": p.name.split()[0], "count": 1, "names": [p.name],
                         "description": p.description, "relevance": dict(p.relevance)}
                        for p in WORLD.advertisers],
    }
    return validate_scenario(data, "sweep-test.toml")


def test_run_writes_the_folder_summary_table_and_report(tmp_path):
    sc = scenario(swept="Alpha", bids=[0, 0.5, 1], replies=12, payments=["pay_as_bid", "vcg"],
                  samples=1)
    res = run_bid_sweep(sc, tmp_path / "run")
    folder = res.folder
    df = pd.read_parquet(folder / "bid_sweep.parquet")
    assert len(df) == 2 * 3 * 2 * 12 * 2  # rules x bids x queries x replies x advertisers
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["cells"]) == 2 * 3 * 2 and summary["swept"] == "Alpha Airlines"
    for c in summary["cells"]:
        g = df[(df["rule"] == c["rule"]) & (df["bid_share"] == c["bid_share"])
               & (df["slot"] == c["slot"])]
        assert c["mention_rate"] == pytest.approx(g["mentioned"].mean())
        assert c["mention_low"] <= c["mention_rate"] <= c["mention_high"]
        # pay-as-bid charges the bid on every token of the reply
        assert c["payment_pay_as_bid"] == pytest.approx(c["bid"] * c["length"])
    for w in summary["reply_cells"]:  # both / neither named: from the per-reply rows
        g = df[(df["rule"] == w["rule"]) & (df["bid_share"] == w["bid_share"])]
        per = g.groupby(["query", "reply"])["mentioned"]
        assert w["all_mentioned"] == pytest.approx(per.all().mean())
        assert w["none_mentioned"] == pytest.approx(1 - per.any().mean())
        rates = [c["mention_rate"] for c in summary["cells"]
                 if (c["rule"], c["bid_share"]) == (w["rule"], w["bid_share"])]
        assert w["all_mentioned"] <= min(rates) + 1e-12
        assert w["none_mentioned"] >= 1 - sum(rates) - 1e-12
    assert (folder / "figures" / "mentions.png").exists()
    records = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 3 * 2 and all(isinstance(r["reply"], str) for r in records)

    sentences = sweep_sentences(summary)
    assert sentences[0].startswith("Under linear aggregation, the share of replies that mention "
                                   "Alpha Airlines is ")
    text = io.StringIO()
    Console(file=text, width=200).print(sweep_table(summary))
    # [mechanism] payment (second price) is not among those charged: the first charged one
    assert "Alpha Airlines" in text.getvalue() and "pays (pay-as-bid)" in text.getvalue()

    # a reply holding markup is escaped in the HTML and stays one cell in Markdown
    evil = {**records[0], "reply": "<script>alert(1)</script> a | b\nnext line",
            "query": sc.language.queries[1].text}
    (folder / "samples.jsonl").write_text(json.dumps(evil) + "\n")
    doc = Doc("t")
    sweep_report(doc, folder, 2)
    html, md = doc.html("run"), doc.markdown("run")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;quiet&lt;/b&gt;" in html
    assert "a \\| b next line" in md
    assert sample_table([evil], evil["rule"])["reply"].iloc[0].endswith("b next line")

    again = run_bid_sweep(sc, folder, resume=True, figures=False)  # every rule already done
    assert again.resumed_from == 2 and again.summary == summary


def test_check_names_the_bad_field():
    with pytest.raises(ValueError, match="experiment.swept = 'Gamma'"):
        check_sweep(scenario(swept="Gamma"))
    with pytest.raises(ValueError, match="experiment.query = 'Tokyo'"):
        check_sweep(scenario(query="Tokyo"))
    assert check_sweep(scenario(swept="Beta Resort", query="Vacations in Hawaii")) == (1, [0])
    with pytest.raises(ValueError, match="must be increasing"):
        BidSweep(kind="bid_sweep", bids=[0.5, 0.2])
