"""The paper's bid grid (seed 000, Section 3) on the exact concept backend: the grid and regret
tables against brute force, Fig. 1's monotonicity, common noise, regret falling with k, and the
whole experiment as a scenario (run folder, summary, table, report, Fig. 5's images)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from genmarket.mechanisms.backends.image import ImageWorld, get_backend
from genmarket.mechanisms.diffusion.paper_grid import draw_noise, grid_table, regret_table

BASES = ("A hiker resting on a mountain trail", "A swimming pool outdoors")
ADS = ("North Face backpack", "Gatorade bottle", "Marriott Bonvoy hotel", "Ray-Ban sunglasses")
PAIRS = [(0, 0, 1), (1, 2, 3)]
B1 = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
B2 = [0.0, 0.5, 1.0]


@pytest.fixture(scope="module")
def backend():
    return get_backend("concept", ImageWorld(BASES, ADS), dtype=torch.float64, steps=6)


@pytest.fixture(scope="module")
def noise(backend):
    return draw_noise(3, 3, len(PAIRS), 50, backend.shape, torch.float64)


@pytest.fixture(scope="module")
def tables(backend, noise):
    return {k: grid_table(backend, PAIRS, B1, B2, k, noise) for k in (5, 50)}


def test_grid_rows_and_payments(tables):
    df = tables[5]
    assert len(df) == len(PAIRS) * 3 * len(B1) * len(B2)
    assert set(zip(df["b1"], df["b2"], strict=True)) == set(itertools.product(B1, B2))
    # the clamp: 0 <= payment <= max(b alpha, 0)
    for i, b in ((1, "b1"), (2, "b2")):
        pay, contrib = df[f"pay{i}"], (df[b] * df[f"align{i}"]).clip(lower=0)
        assert (pay >= 0).all() and (pay <= contrib + 1e-9).all()
    # welfare is the bid-welfare of the kept image; the gain is undefined without baseline welfare
    assert np.allclose(df["welfare"], df["b1"] * df["align1"] + df["b2"] * df["align2"])
    zero = df["base_welfare"] <= 0
    assert df.loc[zero, "gain"].isna().all() and df.loc[~zero, "gain"].notna().all()
    assert df.loc[(df["b1"] == 0) & (df["b2"] == 0), "gain"].isna().all()


def test_common_noise(tables):
    """With b2 = 0 the composition is advertiser 1's prompt alone at every b1 > 0, so on common
    noise the kept image, hence its alignments, is the same for all of them."""
    df = tables[5]
    solo = df[(df["b2"] == 0) & (df["b1"] > 0)]
    spread = solo.groupby(["prompt", "seed"])[["align1", "align2", "quality"]].agg(np.ptp)
    assert (spread.to_numpy() < 1e-9).all()


def test_alignment_rises_with_own_bid(tables):
    """Fig. 1: at every k, advertiser 1's mean alignment rises and advertiser 2's falls as
    advertiser 1's normalised bid goes 0 -> 0.5 -> 1."""
    for df in tables.values():
        m = df.dropna(subset=["share"]).groupby(df["share"].round(6))[["align1", "align2"]].mean()
        a1, a2 = m.loc[[0.0, 0.5, 1.0], "align1"], m.loc[[0.0, 0.5, 1.0], "align2"]
        assert a1.is_monotonic_increasing and a1.iloc[-1] > a1.iloc[0] + 0.3
        assert a2.is_monotonic_decreasing and a2.iloc[0] > a2.iloc[-1] + 0.3


def test_regret_table_is_brute_force(tables):
    """regret_table against a loop over (prompt, seed, m1, m2) and bids b1."""
    df = tables[5]
    r = regret_table(df, B1, B1, B2, B2)
    assert len(r) == len(PAIRS) * 3 * len(B1) * len(B2)
    cells = df.set_index(["prompt", "seed", "b1", "b2"])
    for row in r.sample(40, random_state=0).itertuples():
        u = [row.m1 * cells.at[(row.prompt, row.seed, b, row.m2), "align1"]
             - cells.at[(row.prompt, row.seed, b, row.m2), "pay1"] for b in B1]
        u_true = u[B1.index(row.m1)]
        assert row.u_truthful == pytest.approx(u_true) and row.u_best == pytest.approx(max(u))
        assert row.best_bid == B1[int(np.argmax(u))]
        assert row.distance == pytest.approx(abs(row.best_bid - row.m1))
        if u_true > 0:
            assert row.regret == pytest.approx((max(u) - u_true) / u_true)
        else:
            assert np.isnan(row.regret)
    assert r.loc[r["m1"] == 0, "regret"].isna().all()


def test_regret_falls_with_k(tables):
    """Fig. 3: more samples, less regret of truthful bidding and a best bid nearer the true value
    (means over the grid, fixed noise)."""
    r5, r50 = (regret_table(tables[k], B1, B1, B2, B2) for k in (5, 50))
    assert r50["regret"].mean() < r5["regret"].mean()
    assert r50["distance"].mean() < r5["distance"].mean()


NAMES = ("NorthFace", "Gatorade", "Marriott", "RayBan")
SCENARIO = {
    "name": "paper-grid-test",
    "seed": 1,
    "dtype": "float64",
    "mechanism": {"kind": "diffusion"},
    "image": {"backend": "concept", "prompts": list(BASES), "steps": 4},
    "experiment": {"kind": "paper_grid", "bids1": [0.0, 0.5, 1.0], "bids2": [0.0, 1.0],
                   "samples": [2, 4], "seeds": 2, "image_prompt": 1,
                   "pairs": [{"prompt": 1, "advertisers": ["RayBan", "Marriott"]},
                             {"prompt": 0, "advertisers": ["NorthFace", "Gatorade"]}]},
    "advertisers": [{"group": g, "count": 1, "description": d}
                    for g, d in zip(NAMES, ADS, strict=True)],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from genmarket.market.running.runner import run_scenario
    from genmarket.market.scenario import validate_scenario

    out = tmp_path_factory.mktemp("paper") / "run"
    res = run_scenario(validate_scenario(copy.deepcopy(SCENARIO)), out, figures=True)
    return res, out


def test_scenario_runs_end_to_end(experiment):
    res, out = experiment
    auctions = pd.read_parquet(out / "auctions.parquet")
    regret = pd.read_parquet(out / "regret.parquet")
    assert len(auctions) == 2 * 2 * 3 * 2 * 2 and sorted(auctions["k"].unique()) == [2, 4]
    assert len(regret) == 2 * 2 * 3 * 2 * 2  # prompts x seeds x m1 x m2 x k
    summary = res.summary
    assert [c["k"] for c in summary["cells"]] == [2, 4]
    # the pairs' order and names: prompt 1 (the pool) with Ray-Ban first
    assert summary["prompts"] == [BASES[1], BASES[0]]
    assert summary["advertisers"] == [["RayBan", "Marriott"], ["NorthFace", "Gatorade"]]
    for name in ("fig1_alignment", "fig2_welfare", "fig3_truthfulness", "fig4_quality",
                 "fig5_images"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    # Fig. 5: the five bid pairs of the paper, for the pair image_prompt = 1 (the hiker's)
    images = pd.read_parquet(out / "images.parquet")
    assert list(zip(images["b1"], images["b2"], strict=True)) == [
        (0.0, 1.0), (0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (1.0, 0.0)]
    assert all((out / f).read_bytes()[:4] == b"\x89PNG" for f in images["file"])
    assert images["align1"].iloc[-1] > images["align1"].iloc[0]
    assert images["align2"].iloc[0] > images["align2"].iloc[-1]


def test_report_and_table_render(experiment):
    from rich.console import Console

    from genmarket.market.reports.report import write_report
    from genmarket.mechanisms.diffusion.paper import PAPER_GRID

    res, out = experiment
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(PAPER_GRID.table(res.summary))
    text = console.export_text()
    assert "regret" in text and text.count("\n") >= 4 and "%" in text
    sentences = PAPER_GRID.sentences(res.summary)
    assert any("Bid monotonicity" in s for s in sentences)
    assert any("t-interval over 2 seeds" in s for s in sentences)
    html, md = write_report(out)
    page = html.read_text()
    assert "Fig. 5" in page and "Bid monotonicity" in page and "data:image/png" in page
    assert "Fig. 1" in md.read_text()


def test_resume_reruns_only_missing_k(experiment, tmp_path):
    import shutil

    from genmarket.market.running.runner import run_scenario
    from genmarket.market.scenario import validate_scenario

    _, out = experiment
    copy_ = tmp_path / "run"
    shutil.copytree(out, copy_)
    (copy_ / "parts" / "auctions-k00004.parquet").unlink()
    res = run_scenario(validate_scenario(copy.deepcopy(SCENARIO)), copy_, resume=True,
                       figures=False)
    assert res.resumed_from == 1
    pd.testing.assert_frame_equal(pd.read_parquet(copy_ / "auctions.parquet"),
                                  pd.read_parquet(out / "auctions.parquet"))


@pytest.mark.parametrize("change, match", [
    ({"pairs": [{"prompt": 0, "advertisers": ["NorthFace", "Nike"]}], "image_prompt": 0},
     r"experiment.pairs\[0\].advertisers: 'Nike' is not an advertiser's name"),
    ({"pairs": [{"prompt": 5, "advertisers": ["NorthFace", "Gatorade"]}], "image_prompt": 0},
     r"experiment.pairs\[0\].prompt = 5"),
    ({"values1": [0.25]}, r"experiment.values1: 0.25 is not on experiment.bids1"),
    ({"samples": [4, 2]}, r"experiment.samples = \[4, 2\]: must be increasing"),
])
def test_bad_settings_say_which_field(change, match, tmp_path):
    from genmarket.market.running.runner import run_scenario
    from genmarket.market.scenario import validate_scenario

    sc = copy.deepcopy(SCENARIO)
    sc["experiment"].update(change)
    with pytest.raises(ValueError, match=match):
        run_scenario(validate_scenario(sc), tmp_path / "run", figures=False)
