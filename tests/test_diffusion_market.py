"""The diffusion image auction as a market family: the image world's section, the adapter's
counterfactuals (re-drawn on the same noise), bid monotonicity, payment bounds, samples with PNG
images, and exact resume."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

from genmarket.market.engine.market import Market
from genmarket.market.engine.seam import families
from genmarket.market.engine.streams import Streams
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import ScenarioError, load_scenario, validate_scenario
from genmarket.mechanisms.backends.image.world import build_world, describe_world
from genmarket.mechanisms.contract import check_family
from genmarket.mechanisms.diffusion import FAMILY
from genmarket.mechanisms.diffusion.adapter import normal_noise

try:  # the tiny diffusers and CLIP folders built from configs (nothing downloads)
    from test_diffusers_backend import pixel_model, scorer  # noqa: F401  (fixtures)
except ImportError:  # diffusers is not installed: the template's test is skipped
    pixel_model = scorer = None

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = tomllib.loads((ROOT / "scenarios" / "diffusion_market.toml").read_text())
TEMPLATE = tomllib.loads((ROOT / "scenarios" / "diffusion_hf.toml").read_text())


def shrunk(**over) -> dict:
    """The shipped diffusion_market scenario, small: 12 rounds of 4 auctions, k = 4 images."""
    d = copy.deepcopy(SHIPPED)
    d.update(steps=12, auctions_per_step=4, replicas=2, checkpoint_every=5)
    d["mechanism"]["samples"] = 4
    d["metrics"] = {"every": 4, "deviation_grid": {"low": 0.0, "high": 1.5, "n": 3},
                    "samples": 2}
    d.update(over)
    return d


def fixed_bidders(multipliers: dict[str, float], **over) -> dict:
    """Two advertisers of value 1 who always enter and bid fixed multipliers of it."""
    d = shrunk(**over)
    d["advertisers"] = [
        {"group": g, "count": 1, "description": f"{g} logo", "value": 1.0,
         "strategy": {"kind": "multiplier", "a": a}} for g, a in multipliers.items()]
    return d


def test_the_family_is_registered_and_passes_the_contract():
    assert FAMILY in families()
    check_family(FAMILY, seeds=(0,))


def test_a_short_run_has_metrics_samples_with_png_images_and_resumes_exactly(tmp_path):
    whole = run_scenario(validate_scenario(shrunk()), tmp_path / "whole", figures=False)
    m = pd.read_parquet(whole.folder / "metrics.parquet")
    for col in ("revenue", "welfare", "welfare_gain", "quality", "misreport_gain",
                "entry_rate", "entry_rate_relevant"):
        assert m[col].notna().all(), col
    lines = (whole.folder / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 4  # two per collected round (1, 4, 8, 12)
    for rec in map(json.loads, lines):
        assert rec["prompt"] in SHIPPED["image"]["prompts"] and 0 <= rec["chosen"] < 4
        (png,) = rec["files"]
        assert (whole.folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Interrupted):
        run_scenario(validate_scenario(shrunk()), tmp_path / "cut", figures=False, stop_after=7)
    cut = run_scenario(validate_scenario(shrunk()), tmp_path / "cut", figures=False, resume=True)
    pd.testing.assert_frame_equal(m, pd.read_parquet(cut.folder / "metrics.parquet"))
    assert (cut.folder / "samples.jsonl").read_text().splitlines() == lines


def collect_rounds(d: dict, rounds: int):
    """Step a market `rounds` times; returns it and every round's (Round, Cleared)."""
    market = Market(d)
    seen = []
    clear = market.adapter.clear

    def spy(rnd):
        cleared = clear(rnd)
        seen.append((rnd, cleared))
        return cleared

    market.adapter.clear = spy
    for _ in range(rounds):
        market.step()
    return market, seen


def test_a_higher_bid_buys_more_alignment_and_payments_stay_within_bounds():
    d = fixed_bidders({"high": 1.5, "low": 0.3}, auctions_per_step=16, dtype="float64")
    d["metrics"]["every"] = 1
    market, seen = collect_rounds(d, 4)
    high = torch.tensor([a for _, row in market.rows for a in row["alignment_high"]])
    low = torch.tensor([a for _, row in market.rows for a in row["alignment_low"]])
    assert len(high) == 4 * 2 and (high > low).float().mean() >= 0.75, (high, low)
    assert float(high.mean()) > float(low.mean()) + 0.1, (high, low)
    for _, cleared in seen:
        out, bids = cleared.extra["run"].outcome, cleared.extra["bids"]
        contribution = (bids * out.alignment).clamp_min(0)
        assert (out.payment >= 0).all() and (out.payment <= contribution + 1e-12).all()


def test_raw_payments_are_kept_when_not_clamped():
    d = fixed_bidders({"a": 1.0, "b": 1.0}, dtype="float64")
    d["mechanism"]["clamp"] = False
    _, seen = collect_rounds(d, 2)
    for _, cleared in seen:
        out = cleared.extra["run"].outcome
        assert torch.equal(out.payment, out.payment_raw)


def test_the_grid_and_entry_counterfactuals_redraw_the_round_itself():
    """Re-drawing an auction at the bid actually placed reproduces the round's utility, and
    re-drawing it without an entrant reproduces the leave-one-out image's value: the
    counterfactuals run on the round's own prompt and noise."""
    d = shrunk(dtype="float64")
    d["feedback"] = {"kind": "full"}
    market, seen = collect_rounds(d, 3)
    ad = market.adapter
    rnd, cleared = seen[-1]
    grid = ad.grid_utility(cleared)
    for g in market.groups:
        acted = rnd.acted[g.index][1]  # [R, B, A] action indices
        at_bid = grid[g.index].gather(-1, acted.unsqueeze(-1)).squeeze(-1)
        inside = rnd.mask[..., g.cols]
        torch.testing.assert_close(at_bid[inside], cleared.gross[..., g.cols][inside],
                                   rtol=1e-9, atol=1e-9)
    e = cleared.extra
    RB, n = e["mask"].shape
    out_mask = e["mask"].unsqueeze(1) & ~torch.eye(n, dtype=torch.bool).unsqueeze(0)
    alone = ad.variants(cleared, e["bids"].unsqueeze(1).expand(RB, n, n), out_mask)
    staying_out = torch.diagonal(alone, dim1=1, dim2=2)  # [RB, n]: m_i alpha_i without i
    inside = e["mask"]
    torch.testing.assert_close((cleared.gross.reshape(RB, n) - staying_out)[inside],
                               e["gain"][inside], rtol=1e-9, atol=1e-9)


def test_noise_is_standard_normal_and_a_replica_keeps_its_own():
    one = normal_noise(Streams(3, 1), 5, 8, 16, (32,), torch.float64)
    three = normal_noise(Streams(3, 3), 5, 8, 16, (32,), torch.float64)
    assert torch.equal(one[0], three[0]) and not torch.equal(three[0], three[1])
    assert abs(float(three.mean())) < 0.05 and abs(float(three.std()) - 1) < 0.05


def problems(d: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        validate_scenario(d)
    return "\n".join(info.value.problems)


def test_the_image_section_refuses_what_cannot_run(tmp_path):
    d = shrunk()
    d["image"]["backend"] = "nope"
    assert "image.backend = 'nope': not one of concept, diffusers" in problems(d)
    d = shrunk()
    d["image"]["concept"] = {"steps": 3}
    assert "image.concept.steps: unknown key (set image.steps)" in problems(d)
    d = shrunk()
    d["advertisers"][0]["relevance"] = {"A beach": 1.0}
    assert "not one of image.prompts" in problems(d)
    d = shrunk()
    d["advertisers"][0]["report"] = {"kind": "truthful"}
    assert "bid themselves" in problems(d)
    d = shrunk()
    d["feedback"] = {"kind": "full"}
    for g in d["advertisers"]:
        g["strategy"]["multipliers"]["n"] = 100
    assert "feedback.kind = 'full'" in problems(d)
    d = shrunk()
    missing = tmp_path / "no-such-model"
    d["image"].update(backend="diffusers", model=str(missing), scorer=str(missing))
    del d["image"]["steps"]
    path = tmp_path / "s.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in d.items() if not isinstance(v, dict | list)]
    path.write_text("\n".join(lines) + "\n" + _tables(d))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (line,) = info.value.problems
    assert line.startswith(f"image.model = '{missing}'") and str(missing) in line


def _tables(d: dict) -> str:
    """The tables of `d` as TOML (inline tables; enough for a scenario)."""
    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"[{k}]\n" + "\n".join(f"{json.dumps(a)} = {value(x)}" for a, x in v.items()))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out += [f"[[{k}]]\n" + "\n".join(f"{json.dumps(a)} = {value(x)}" for a, x in g.items())
                    for g in v]
    return "\n".join(out) + "\n"


def test_the_world_lists_advertisers_in_column_order_and_describes_itself():
    sc = validate_scenario(shrunk())
    world = build_world(sc)
    assert world.base_prompts == tuple(SHIPPED["image"]["prompts"])
    expected = [g["description"] for g in SHIPPED["advertisers"] for _ in range(g["count"])]
    assert list(world.advertisers) == expected
    assert describe_world(SHIPPED["image"]) == "concept image backend; 3 base prompts; 8 reverse steps"


@pytest.mark.skipif(pixel_model is None, reason="diffusers is not installed")
def test_the_hf_template_runs_on_any_local_diffusers_folder(request, tmp_path):
    """diffusion_hf.toml with its model and scorer pointed at tiny local folders (a pixel-space
    UNet with an Euler scheduler, a CLIPModel): a short run writes metrics and PNG images."""
    d = copy.deepcopy(TEMPLATE)
    d.update(steps=2, auctions_per_step=2)
    d["mechanism"]["samples"] = 2
    d["image"].update(model=str(request.getfixturevalue("pixel_model")),
                      scorer=str(request.getfixturevalue("scorer")), steps=2)
    d["metrics"].update(every=1, deviation_grid={"low": 0.5, "high": 1.5, "n": 2}, samples=1)
    res = run_scenario(validate_scenario(d), tmp_path / "hf", figures=False)
    m = pd.read_parquet(res.folder / "metrics.parquet")
    assert m[["revenue", "welfare", "welfare_gain", "quality"]].notna().all().all()
    recs = [json.loads(x) for x in (res.folder / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for rec in recs:
        png = (res.folder / rec["files"][0]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_float32_is_kept_for_comparable_values_and_left_where_they_are_far_apart():
    """Bid-welfares reach n x the largest bid while utilities must resolve the smallest value:
    values 1 and 1 stay in float32; values 1e4 and 1e-2 (n x the largest deviation bid 1.5e4
    against 0.01: ratio 3e6 > 8,400) compute in float64, and are refused under "refuse"."""
    from genmarket.market.engine.precision import choose_precision

    assert choose_precision(validate_scenario(fixed_bidders({"a": 1.0, "b": 1.0}))).dtype == "float32"
    far = fixed_bidders({"a": 1.0, "b": 1.0})
    far["advertisers"][0]["value"], far["advertisers"][1]["value"] = 1e4, 1e-2
    assert choose_precision(validate_scenario(far)).dtype == "float64"
    far["precision"] = "refuse"
    assert "dtype = 'float32': cannot resolve the money quantities" in problems(far)
    assert "the ratio 3e+06" in problems(far)
