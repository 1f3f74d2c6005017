"""Compiled rounds (genmarket.market.engine.compiled): the same numbers as the eager rounds, bit
for bit, over whole runs; the path each scenario takes and why; resume across the two paths.

Each market here compiles two graphs (before and inside the summary window) of 2 rounds a call,
about 15-25 s on a cold inductor cache on the 2-core CPU; the module shares them.
"""

import json
import math

import pytest
import torch

from genmarket.market.engine import compiled as C
from genmarket.market.engine.market import Market
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import validate_scenario

STEPS = 600


def qlearning(compile: str = "on", **over) -> dict:
    """The BS22 market, small: two Q-learners, one first-price auction a round, an exploration
    schedule that reaches 0 (epsilon = exp(-80 t / STEPS) falls below the 1e-30 floor at
    round 518), so the run covers epsilon 1 down to exactly 0, and the window's last 60 rounds."""
    data = {
        "name": "compiled-q", "seed": 3, "steps": STEPS, "auctions_per_step": 1, "replicas": 8,
        "mechanism": {"kind": "first_price"}, "feedback": {"kind": "bandit"},
        "compile": compile, "compile_rounds": 2,
        "advertisers": [{
            "group": "bidders", "count": 2, "value": 1.0,
            "strategy": {"kind": "qlearning", "lr": 0.1, "discount": 0.9,
                         "bids": {"low": 0.0, "high": 1.0, "n": 21},
                         "epsilon": {"start": 1.0, "decay": 80 / STEPS}},
        }],
        "metrics": {"every": 50, "agents": False},
    }
    data.update(over)
    return data


def hedge(compile: str = "on") -> dict:
    """Four Hedge bidders, full feedback, 16 second-price auctions a round."""
    return {
        "name": "compiled-hedge", "seed": 5, "steps": 300, "auctions_per_step": 16, "replicas": 3,
        "mechanism": {"kind": "second_price", "reserve": 0.05}, "feedback": {"kind": "full"},
        "compile": compile, "compile_rounds": 2,
        "advertisers": [{
            "group": "bidders", "count": 4, "value": {"dist": "uniform", "low": 0, "high": 1},
            "strategy": {"kind": "hedge", "eta": 0.5, "multipliers": {"low": 0.0, "high": 1.5, "n": 16}},
        }],
        "metrics": {"every": 40, "agents": False},
    }


def _run(data: dict) -> Market:
    model = Market(validate_scenario(data))
    while model.steps < data["steps"]:
        model.advance(data["steps"])
    return model


def _assert_same(a: Market, b: Market) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k}: {(sa[k] != sb[k]).sum().item()} entries differ"
    assert [s for s, _ in a.rows] == [s for s, _ in b.rows]
    for (step, ra), (_, rb) in zip(a.rows, b.rows, strict=True):
        for name in ra:
            x, y = ra[name], rb[name]
            assert ((x == y) | (x != x) & (y != y)).all(), f"{name} at step {step}"


@pytest.fixture(scope="module")
def q_pair():
    return _run(qlearning("off")), _run(qlearning("on"))


def test_qlearning_compiled_is_bit_identical_over_the_schedule(q_pair):
    eager, comp = q_pair
    info = comp.compiled.info
    assert info.path == "compiled" and info.chunk == 2
    # every round but the collected ones, the window's first and the chunks they break
    assert info.rounds >= STEPS * 3 // 4, info
    assert eager.compiled.info.rounds == 0
    s = comp.groups[0].bidder.strategy
    assert s.epsilon(STEPS - 1) == 0.0 and s.epsilon(0) == 1.0  # the whole schedule is covered
    _assert_same(eager, comp)
    assert comp.diagnostics.rounds == eager.diagnostics.rounds == STEPS // 10


def test_hedge_compiled_is_bit_identical():
    eager, comp = _run(hedge("off")), _run(hedge("on"))
    assert comp.compiled.info.path == "compiled" and comp.compiled.info.rounds > 200
    _assert_same(eager, comp)


@pytest.mark.parametrize("auctions, buckets", [(1, 3), (4, 2)])
def test_contextual_qlearning_compiled_is_bit_identical(auctions, buckets):
    """Value buckets (C > 1) and uniform values: the one-auction update on a table with several
    rows per bidder, and the general update of a round of several auctions."""
    over = {"steps": 300, "auctions_per_step": auctions, "metrics": {"every": 40, "agents": False},
            "advertisers": [{
                "group": "bidders", "count": 3, "value": {"dist": "uniform", "low": 0, "high": 1},
                "strategy": {"kind": "qlearning", "lr": 0.2, "discount": 0.5, "buckets": buckets,
                             "multipliers": {"low": 0.2, "high": 1.0, "n": 9},
                             "epsilon": {"start": 1.0, "decay": 0.02}}}]}
    eager, comp = _run(qlearning("off", **over)), _run(qlearning("on", **over))
    assert comp.groups[0].bidder.C == buckets and comp.compiled.info.rounds > 200
    _assert_same(eager, comp)


def test_compiled_chunks_leave_collection_rounds_to_the_eager_path(q_pair):
    _, comp = q_pair
    steps = [s for s, _ in comp.rows]
    assert steps == [1] + list(range(50, STEPS + 1, 50))  # no collection was skipped


@pytest.mark.parametrize("over, why", [
    ({"compile": "off"}, "compile = off"),
    ({"compile": "auto"}, f"600 rounds, under the {C.AUTO_MIN_ROUNDS}"),
    ({"compile": "auto", "steps": C.AUTO_MIN_ROUNDS, "replicas": 10_000},
     "20000 auction-advertiser numbers a round"),
    ({"compile": "auto", "advertisers": [{"group": "b", "count": 2, "value": 1.0,
                                          "strategy": {"kind": "exp3"}}]}, "exp3"),
    ({"compile": "auto", "advertisers": [{"group": "b", "count": 2, "value": 1.0,
                                          "entry": {"kind": "threshold"}}]}, "entry 'threshold'"),
])
def test_the_path_says_why_rounds_stay_eager(over, why):
    path = C.decide(validate_scenario(qlearning(**over)))
    assert path.path == "eager" and why in path.why, path


def test_auto_compiles_a_long_small_market():
    path = C.decide(validate_scenario(qlearning("auto", steps=C.AUTO_MIN_ROUNDS)))
    assert path.path == "compiled" and path.chunk == 2


def test_compile_on_is_refused_where_the_market_cannot_compile():
    data = qlearning("on", advertisers=[{"group": "b", "count": 2, "value": 1.0,
                                         "strategy": {"kind": "ucb"}}])
    with pytest.raises(ValueError, match="compile = 'on': group 'b': strategy 'ucb' does not compile"):
        validate_scenario(data)
    with pytest.raises(ValueError, match="compile_rounds"):
        validate_scenario(qlearning(compile_rounds=0))
    with pytest.raises(ValueError, match="compile"):
        validate_scenario(qlearning(compile="yes"))


def test_a_failed_compile_falls_back_to_eager_with_the_same_numbers(monkeypatch, q_pair):
    def broken(*args, **kwargs):
        def fail():
            raise RuntimeError("no C++ compiler found\nmore")
        return fail

    monkeypatch.setattr(C.torch, "compile", broken)
    monkeypatch.setattr(C, "AUTO_MIN_ROUNDS", 0)
    model = _run(qlearning("auto"))
    assert model.compiled.info.path == "eager"
    assert "compiling the round failed (RuntimeError: no C++ compiler found)" in model.compiled.info.why
    _assert_same(q_pair[0], model)
    with pytest.raises(RuntimeError, match="compile = on: compiling the round failed"):
        _run(qlearning("on"))


def test_a_compiled_run_resumes_exactly_and_its_manifest_says_how(tmp_path, q_pair):
    data = qlearning("on", checkpoint_every=100)
    sc = validate_scenario(data)
    with pytest.raises(Interrupted):
        run_scenario(sc, tmp_path / "r", figures=False, stop_after=250)
    interrupted = json.loads((tmp_path / "r" / "manifest.json").read_text())["compile"]
    assert interrupted["path"] == "compiled" and interrupted["compiled_rounds"] > 100
    # the resumed process has drawn no stream yet: one eager round, then chunks again
    resumed = run_scenario(sc, tmp_path / "r", resume=True, figures=False)
    whole = run_scenario(validate_scenario(qlearning("off", checkpoint_every=100)),
                         tmp_path / "w", figures=False)
    assert resumed.summary["metrics"] == whole.summary["metrics"]
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    again = manifest["resumes"][-1]["compile"]
    assert again["path"] == "compiled" and again["compiled_rounds"] > 250, again
    first = run_scenario(sc, tmp_path / "c", figures=False)
    record = json.loads((tmp_path / "c" / "manifest.json").read_text())["compile"]
    assert record["path"] == "compiled" and record["compiled_rounds"] > 400
    assert record["compile_seconds"] >= 0 and first.summary["compile"] == record
    for k, v in first.summary["metrics"].items():
        w = whole.summary["metrics"][k]
        assert v == w or (v is None and w is None) or (math.isnan(v) and math.isnan(w)), k


def test_collection_too_frequent_for_a_chunk_stays_eager_or_is_refused():
    data = qlearning("auto", steps=C.AUTO_MIN_ROUNDS, metrics={"every": 10, "agents": False},
                     compile_rounds=16)
    path = C.decide(validate_scenario(data))
    assert path.path == "eager" and "metrics.every = 10 leaves no 16 rounds" in path.why
    data["compile"] = "on"
    with pytest.raises(ValueError, match="collect less often or lower compile_rounds"):
        validate_scenario(data)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_hash_gives_the_eager_uniforms(dtype):
    """Compiled rounds hash their uniform blocks with a compiled kernel (wrapping int64
    arithmetic): the same numbers as the eager hash, at rounds near 2**40 as at 0."""
    from genmarket.market.engine.streams import Streams

    eager, comp = Streams(11, 7), Streams(11, 7)
    comp.compile_hash()
    for stream, step in ((3, 0), (4, 2**40 + 12345), (1 << 16 | 99, 7_000_001)):
        a = eager.uniform(stream, step, (5, 3), dtype)
        b = comp.uniform(stream, step, (5, 3), dtype)
        assert comp._hasher is not None and torch.equal(a, b)
