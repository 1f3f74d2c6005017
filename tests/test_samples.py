"""Readable samples (samples.jsonl) through the family seam: MOSAIC's replies decoded from the
tokens the mechanism returned, the classic auctions' bids, files attached by a family, resume
and extend that neither lose nor repeat a sample, `samples = 0` costing nothing, the one-shot
experiment's samples per cell, and the report's section."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from genmarket.market.engine.market import Market
from genmarket.market.reports.report import write_report
from genmarket.market.reports.samples import chosen
from genmarket.market.running.folder import read_samples
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import validate_scenario
from genmarket.mechanisms.classic.adapter import ClassicAdapter
from genmarket.mechanisms.mosaic.adapter import MosaicAdapter

MOSAIC = {
    "name": "mosaic-samples",
    "seed": 5,
    "steps": 30,
    "auctions_per_step": 6,
    "replicas": 2,
    "dtype": "float64",
    "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": True, "candidates": 5,
                  "generator": "context"},
    "language": {"backend": "synthetic", "topics": ["cooking", "travel"], "queries_per_topic": 3,
                 "length": 8},
    "feedback": {"kind": "full"},
    "advertisers": [
        {"group": "kitchen", "count": 2, "description": "kitchen appliances",
         "relevance": {"cooking": 0.9},
         "strategy": {"kind": "hedge", "multipliers": {"low": 0.25, "high": 2.0, "n": 8}},
         "entry": {"kind": "threshold", "alpha": 0.2, "initial": 1.0}, "entry_cost": 0.5},
        {"group": "airline", "count": 1, "description": "flights",
         "relevance": {"travel": 0.9}, "strategy": {"kind": "truthful"}},
    ],
    "metrics": {"every": 5, "samples": 3, "deviation_grid": {"low": 0.25, "high": 2.0, "n": 4}},
}


def run(d, tmp_path, name="run", **kw):
    return run_scenario(validate_scenario(copy.deepcopy(d)), tmp_path / name, figures=False, **kw)


def lines(folder):
    return (folder / "samples.jsonl").read_text(encoding="utf-8")


def test_mosaic_samples_have_the_fields_and_a_line_per_sample(tmp_path):
    res = run(MOSAIC, tmp_path)
    recs = read_samples(res.folder / "samples.jsonl")
    # collected at round 1 and every 5 rounds
    assert [r["step"] for r in recs] == [s for s in (1, *range(5, 31, 5)) for _ in range(3)]
    assert {r["replica"] for r in recs} == {0}
    assert [r["auction"] for r in recs[:3]] == [0, 1, 2]
    names = {"kitchen-1", "kitchen-2", "airline"}
    for r in recs:
        assert list(r)[:3] == ["step", "replica", "auction"]
        assert r["query"] and r["reply"] and 0 <= r["chosen"] < r["candidates_total"] == 5
        assert {e["name"] for e in r["entrants"]} | set(r["stayed_out"]) == names
        for e in r["entrants"]:
            assert set(e) >= {"group", "value", "report", "reward", "payment", "utility"}
            assert e["utility"] == pytest.approx(e["reward"] - e["payment"], rel=1e-4, abs=1e-5)
        probs = [r["probability"]] + [c["probability"] for c in r["candidates"]]
        assert probs[1:] == sorted(probs[1:], reverse=True) and sum(probs) <= 1 + 1e-5
        assert r["chosen"] not in [c["index"] for c in r["candidates"]]
    # every line is one JSON object
    assert all(json.loads(x) for x in lines(res.folder).splitlines())


def test_mosaic_replies_are_the_returned_tokens_decoded_and_re_encode(monkeypatch):
    """The sample's tokens are the candidate the mechanism chose in replica 0's auction; its
    reply is their decoding, which the synthetic vocabulary maps back to the same tokens; the
    payments and probability are the outcome's."""
    seen = []
    clear = MosaicAdapter.clear

    def spy(self, rnd):
        cleared = clear(self, rnd)
        seen.append(cleared)
        return cleared

    monkeypatch.setattr(MosaicAdapter, "clear", spy)
    d = copy.deepcopy(MOSAIC)  # distinct descriptions: distinct product words
    d["advertisers"][0].update(count=1, names=["KitchenFix"])
    d["advertisers"].append({**d["advertisers"][0], "group": "bakery", "names": ["BakeBest"],
                             "description": "baking supplies"})
    model = Market(d)
    for _ in range(10):
        model.step()
    recs = model.take_samples()
    assert len(recs) == 9 and model.take_samples() == []  # rounds 1, 5 and 10
    backend = model.adapter.backend
    slots = torch.arange(model.n)
    words = {backend.decode(torch.tensor([v]), slots): v for v in range(backend.vocab_size(model.n))}
    assert len(words) == backend.vocab_size(model.n)  # one word per token: decoding is invertible
    for rec in recs:
        cleared = seen[rec["step"] - 1]
        b, out, cand = rec["auction"], cleared.extra["out"], cleared.extra["cand"]
        j = int(out.choice[b])
        tokens = [t for t in cand.tokens[b, j].tolist() if t >= 0]
        assert rec["chosen"] == j and rec["tokens"] == tokens
        assert rec["reply"] == backend.decode(cand.tokens[b, j], slots)
        assert [words[w] for w in rec["reply"].split(" ")] == tokens
        assert rec["probability"] == pytest.approx(float(out.allocation[b, j]), rel=1e-5)
        for e in rec["entrants"]:
            i = model.adapter.world.advertisers.index(
                next(a for a in model.adapter.world.advertisers if a.name == e["name"]))
            assert e["payment"] == pytest.approx(float(out.payment[b, i]), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("stop", [12, 17])
def test_resume_repeats_and_loses_no_sample(tmp_path, stop):
    d = copy.deepcopy(MOSAIC)
    d["checkpoint_every"] = 10
    whole = run(d, tmp_path, "whole")
    with pytest.raises(Interrupted):
        run(d, tmp_path, "cut", stop_after=stop)
    assert max(r["step"] for r in read_samples(tmp_path / "cut" / "samples.jsonl")) == 10
    resumed = run(d, tmp_path, "cut", resume=True)
    assert lines(resumed.folder) == lines(whole.folder)


def test_a_killed_append_is_dropped_on_resume(tmp_path):
    d = copy.deepcopy(MOSAIC)
    d["checkpoint_every"] = 10
    whole = run(d, tmp_path, "whole")
    with pytest.raises(Interrupted):
        run(d, tmp_path, "cut", stop_after=12)
    with open(tmp_path / "cut" / "samples.jsonl", "a") as fh:  # rows of step 15, cut mid-line
        fh.write(lines(whole.folder).splitlines()[9] + "\n" + '{"step": 15, "repl')
    resumed = run(d, tmp_path, "cut", resume=True)
    assert lines(resumed.folder) == lines(whole.folder)


def test_classic_samples_extend_like_the_metrics(scenario_dict, tmp_path):
    scenario_dict.update(steps=60)
    scenario_dict["metrics"]["samples"] = 2
    whole = run(scenario_dict, tmp_path, "whole")
    run({**scenario_dict, "steps": 35}, tmp_path, "grown")
    grown = run(scenario_dict, tmp_path, "grown", resume=True)
    assert lines(grown.folder) == lines(whole.folder)
    rec = read_samples(whole.folder / "samples.jsonl")[0]
    bids = [b["bid"] for b in rec["bidders"]]
    assert bids == sorted(bids, reverse=True) and len(bids) == 3
    # second price: the highest bidder wins one unit and pays the second bid
    assert rec["bidders"][0]["won"] == 1 and rec["bidders"][0]["payment"] == pytest.approx(bids[1])
    assert rec["revenue"] == pytest.approx(bids[1])


def test_samples_zero_writes_nothing_and_calls_nothing(scenario_dict, tmp_path, monkeypatch):
    def boom(*_):
        raise AssertionError("the samples hook ran with samples = 0")

    monkeypatch.setattr(ClassicAdapter, "samples", boom)
    scenario_dict["metrics"]["samples"] = 0
    res = run(scenario_dict, tmp_path)
    assert not (res.folder / "samples.jsonl").exists()
    d = copy.deepcopy(MOSAIC)
    d["metrics"]["samples"] = 0
    assert not (run(d, tmp_path, "mosaic").folder / "samples.jsonl").exists()


def test_attached_files_are_written_listed_and_dropped_on_resume(scenario_dict, tmp_path,
                                                                   monkeypatch):
    """A family may attach files (an image): they land in samples/, the line lists them, and a
    resumed run rewrites those after its checkpoint."""
    def pictures(self, rnd, cleared, k):
        return [{"auction": b, "attachments": {"bid.txt": f"{rnd.t}:{b}".encode()}}
                for b in range(k)]

    monkeypatch.setattr(ClassicAdapter, "samples", pictures)
    scenario_dict.update(steps=30, checkpoint_every=10)
    scenario_dict["metrics"]["samples"] = 1
    whole = run(scenario_dict, tmp_path, "whole")
    recs = read_samples(whole.folder / "samples.jsonl")
    assert [r["files"] for r in recs[:2]] == [["samples/0000000001-0-0-bid.txt"],
                                              ["samples/0000000005-0-0-bid.txt"]]
    assert "attachments" not in recs[0]
    assert (whole.folder / recs[1]["files"][0]).read_text() == "4:0"  # round 4 is step 5
    with pytest.raises(Interrupted):
        run(scenario_dict, tmp_path, "cut", stop_after=15)
    cut = tmp_path / "cut"
    (cut / "samples" / "0000000025-0-0-bid.txt").write_text("left by a kill")
    run(scenario_dict, tmp_path, "cut", resume=True)
    assert lines(cut) == lines(whole.folder)
    assert sorted(p.name for p in (cut / "samples").iterdir()) == sorted(
        p.name for p in (whole.folder / "samples").iterdir())
    assert (cut / "samples" / "0000000025-0-0-bid.txt").read_text() == "24:0"


ONE_SHOT = {
    "name": "one-shot-samples",
    "seed": 2,
    "dtype": "float64",
    "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": True},
    "language": {"backend": "synthetic", "topics": ["cooking", "travel"],
                 "queries_per_topic": 2, "length": 8},
    "experiment": {"kind": "one_shot", "candidates": [1, 4], "instances": 4, "seeds": 2,
                   "advertisers_per_instance": 2},
    "advertisers": [
        {"group": "kitchen", "count": 2, "relevance": {"cooking": 0.9}},
        {"group": "airline", "count": 2, "relevance": {"travel": 0.9}},
    ],
    "metrics": {"samples": 2},
}


def test_one_shot_writes_samples_per_generator_and_m_and_reports_them(tmp_path):
    res = run(ONE_SHOT, tmp_path)
    recs = read_samples(res.folder / "samples.jsonl")
    cells = [(r["generator"], r["M"]) for r in recs]
    assert cells == [(g, M) for g in ("reference", "context") for M in (1, 4) for _ in range(2)]
    for r in recs:
        assert r["candidates_total"] == r["M"] and len(r["entrants"]) == 2
        for e in r["entrants"]:
            assert e["utility_gain"] == pytest.approx(e["reward_gain"] - e["payment"], abs=1e-4)
    m1 = [e for r in recs if r["M"] == 1 for e in r["entrants"]]
    assert all(abs(e["payment"]) < 1e-6 for e in m1)  # one candidate: nothing to pay (offset)
    # a resumed cell writes its samples again, the same
    before = lines(res.folder)
    (res.folder / "parts" / "auctions-context-00004.parquet").unlink()
    (res.folder / "parts" / "samples-context-00004.jsonl").unlink()
    run_scenario(validate_scenario(copy.deepcopy(ONE_SHOT)), res.folder, resume=True,
                 figures=False)
    assert lines(res.folder) == before
    _, md = write_report(res.folder)
    text = md.read_text()
    shown = chosen(recs)
    assert "## Samples" in text and all(f"reply: “{r['reply']}”" in text for r in shown)


def test_run_report_shows_samples_spread_over_the_run(tmp_path):
    res = run(MOSAIC, tmp_path)
    recs = read_samples(res.folder / "samples.jsonl")
    shown = chosen(recs)
    assert [r["step"] for r in shown] == [1, 15, 30]  # first, middle and last of 21 records
    _, md = write_report(res.folder)
    text = md.read_text()
    assert "## Samples" in text and "3 of the 21 sample auctions" in text
    for r in shown:
        assert f"step {r['step']}, replica 0, auction {r['auction']}" in text
        assert f"reply: “{r['reply']}”" in text


def test_progress_bars_count_cells_replies_and_profiles_and_quiet_silences_them(
        tmp_path, capsys, scenario_dict):
    from genmarket.market.games.compare import run_compare
    from genmarket.market.games.roles import make_roles

    sc = validate_scenario(copy.deepcopy(ONE_SHOT))
    run_scenario(sc, tmp_path / "loud", figures=False, progress=True)
    out = capsys.readouterr().out
    assert "one-shot cells" in out and "4/4" in out and "candidate replies drawn" in out
    run_scenario(sc, tmp_path / "quiet", figures=False, progress=False)
    assert capsys.readouterr().out == ""
    scenario_dict.update(steps=20)
    game = validate_scenario(scenario_dict)
    roles = make_roles(game, [(None, "truthful=truthful,half=multiplier:0.5")])
    run_compare(game, roles, tmp_path / "game", seeds=2, progress=True)
    out = capsys.readouterr().out
    assert "profiles simulated" in out and "4/4" in out
    run_compare(game, roles, tmp_path / "game2", seeds=2, progress=False)
    assert capsys.readouterr().out == ""


def test_a_folder_written_before_the_samples_key_resumes(scenario_dict, tmp_path):
    scenario_dict.update(steps=30, checkpoint_every=10)
    with pytest.raises(Interrupted):
        run(scenario_dict, tmp_path, "old", stop_after=15)
    path = tmp_path / "old" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["scenario"]["metrics"]["samples"]  # as written before the key existed
    path.write_text(json.dumps(manifest))
    assert run(scenario_dict, tmp_path, "old", resume=True).resumed_from == 10
    scenario_dict["metrics"]["samples"] = 5  # but a different value is a different scenario
    with pytest.raises(Exception, match="differs in metrics"):
        run(scenario_dict, tmp_path, "old", resume=True)
