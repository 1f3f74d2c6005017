"""`genmarket report`: a self-contained HTML and a Markdown report for each kind of folder.

The market run is the real first-price quickstart, shortened; the MOSAIC runs, the variants, the
one-shot experiment and the game are small folders written here with the files' real columns.
"""

from __future__ import annotations

import base64
import html as htmllib
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmarket.market.engine.seam import family_of
from genmarket.market.reports.report import write_report
from genmarket.market.running.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = {"python": "3.11", "genmarket": "0.1.0"}


# ---------------------------------------------------------------- fake folders


def shown(md: str) -> str:
    """report.md's text as a reader sees it: Markdown's backslash escapes and the entities of
    `md_escape` undone."""
    return htmllib.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md))


def _write(folder: Path, **files) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        name = name.replace("__", ".")
        if isinstance(data, pd.DataFrame):
            data.to_parquet(folder / name, index=False)
        else:
            (folder / name).write_text(json.dumps(data, indent=1))
    return folder


def _mosaic_scenario(offset: bool, variants=None) -> dict:
    group = {"count": 3, "strategy": {"kind": "truthful"}, "entry_cost": 0.2, "value": 1.0,
             "entry": {"kind": "learned", "learner": {"kind": "hedge", "eta": 0.01}}}
    return {"name": "mosaic-unraveling", "seed": 5, "steps": 300, "auctions_per_step": 32,
            "replicas": 3, "device": "cpu",
            "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": offset, "candidates": 8,
                          "generator": "context"},
            "language": {"backend": "synthetic", "topics": ["cooking"]},
            "advertisers": [{**group, "group": "relevant"}, {**group, "group": "irrelevant"}],
            "metrics": {"every": 25, "unraveling_threshold": 0.5}, "variants": variants}


def mosaic_run(folder: Path, unravel: bool, seed: int = 0) -> Path:
    """A MOSAIC run folder: relevant advertisers leave from round 225 on when `unravel`."""
    rng = np.random.default_rng(seed)
    steps = np.arange(25, 301, 25)
    rows = []
    for r in range(3):
        for s in steps:
            rel = (0.17 if s >= 225 else 0.67) if unravel else 1.0
            rows.append({"step": s, "replica": r, "revenue": 0.5 + 0.01 * rng.normal(),
                         "welfare": 2.0 + 0.1 * rng.normal(), "logp_opt": -40 + rng.normal(),
                         "kl_ref": 25 + rng.normal(), "reward_gain": 7 + rng.normal(),
                         "utility_gain": 2.5 + 0.1 * rng.normal(),
                         "gain_correlation": 0.6 + 0.01 * rng.normal(),
                         "gain_correlation_no_offset": 0.25 + 0.01 * rng.normal(),
                         "ir_share": 1.0, "entry_rate": (rel + 1) / 2,
                         "entry_rate_relevant": rel, "entry_rate_irrelevant": 1.0,
                         "mean_report_ratio": 1.0, "misreport_gain": 1e-8 * rng.random(),
                         "regret": 1e-8 * rng.random(), "utility": -3.7 + 0.1 * rng.normal()})
    metrics = pd.DataFrame(rows)
    summary = summarize(metrics, None, 300, family_of("mosaic"), 0.5)
    manifest = {"scenario": _mosaic_scenario(not unravel), "seed": 5, "device": "cpu",
                "versions": VERSIONS, "git_commit": "abc123", "created": "2026-01-01T00:00:00",
                "command": ["genmarket", "run", "scenarios/mosaic_unraveling.toml"]}
    return _write(folder, manifest__json=manifest, summary__json=summary,
                  metrics__parquet=metrics)


def variants_folder(folder: Path) -> Path:
    variants = [{"name": "offset", "mechanism": {"offset": True}},
                {"name": "no_offset", "mechanism": {"offset": False}}]
    mosaic_run(folder / "offset", unravel=False, seed=1)
    mosaic_run(folder / "no_offset", unravel=True, seed=2)
    comparison = {n: json.loads((folder / n / "summary.json").read_text())
                  for n in ("no_offset", "offset")}
    return _write(folder, manifest__json={"scenario": _mosaic_scenario(True, variants),
                                          "seed": 5, "versions": VERSIONS},
                  comparison__json=comparison)


def one_shot_folder(folder: Path) -> Path:
    from genmarket.mechanisms.mosaic.oneshot import summarize_one_shot

    rng = np.random.default_rng(3)
    auctions, advertisers = [], []
    for gen, lift in (("reference", 0.0), ("context", 4.0)):
        for M in (1, 4, 16):
            for seed in range(2):
                for inst in range(15):
                    gains = rng.random(3) * np.log1p(M)
                    pay = 0.4 * gains
                    auctions.append({
                        "generator": gen, "M": M, "instance": inst, "seed": seed,
                        "logp_opt": -30 + lift + 2 * np.log(M) + rng.normal(), "kl_ref": np.log(M),
                        "logp_reference": -31.0, "logp_proxy": -29.0, "revenue": pay.sum(),
                        "revenue_no_offset": pay.sum() + 1.0, "reward_gain": gains.sum(),
                        "utility_gain": (gains - pay).sum(),
                        "utility_gain_no_offset": (gains - pay).sum() - 1.0, "chosen": 0})
                    for slot in range(3):
                        advertisers.append({
                            "generator": gen, "M": M, "instance": inst, "seed": seed,
                            "slot": slot, "advertiser": f"A{slot}", "reward_gain": gains[slot],
                            "payment": pay[slot], "utility_gain": gains[slot] - pay[slot],
                            "utility_gain_no_offset": gains[slot] - pay[slot] - 1 / 3})
    auctions, advertisers = pd.DataFrame(auctions), pd.DataFrame(advertisers)
    scenario = {"name": "mosaic-paper", "seed": 1, "replicas": 1,
                "mechanism": {"kind": "mosaic", "tau": 1.0, "offset": True},
                "experiment": {"kind": "one_shot", "instances": 15, "seeds": 2,
                               "candidates": [1, 4, 16], "generators": ["reference", "context"]},
                "advertisers": [{"group": "ads", "count": 3, "value": 1.0}]}
    return _write(folder, auctions__parquet=auctions, advertisers__parquet=advertisers,
                  summary__json=summarize_one_shot(auctions, advertisers),
                  manifest__json={"scenario": scenario, "seed": 1, "versions": VERSIONS})


PROFILES = ["bidders: truthful=2", "bidders: shade=1 truthful=1", "bidders: shade=2"]


def game_folder(folder: Path) -> Path:
    rng = np.random.default_rng(4)
    payoff = {("bidders: truthful=2", "truthful"): 0.17, ("bidders: shade=1 truthful=1", "truthful"): 0.25,
              ("bidders: shade=1 truthful=1", "shade"): 0.08, ("bidders: shade=2", "shade"): 0.16}
    game = pd.DataFrame([(p, "bidders", s, 2 if p.endswith("=2") else 1, seed,
                          u + 0.005 * rng.normal()) for (p, s), u in payoff.items()
                         for seed in range(3)],
                        columns=["profile", "role", "strategy", "count", "seed", "payoff"])
    outcomes = pd.DataFrame([(p, seed, rev + 0.01 * rng.normal(), 0.66 + 0.01 * rng.normal(), 1.0,
                              mg) for p, rev, mg in zip(PROFILES, (0.33, 0.25, 0.17),
                                                         (0.0, 0.04, 0.08), strict=True)
                             for seed in range(3)],
                            columns=["profile", "seed", "revenue", "welfare", "entry_rate",
                                     "misreport_gain"])
    analysis = {
        "equilibria": [{"mixture": {"bidders": {"truthful": 1.0, "shade": 0.0}}, "regret": 0.003,
                        "regret_ci95": [0.0, 0.011], "support": {"bidders": ["truthful"]}}],
        "pure_regrets": {PROFILES[0]: 0.0, PROFILES[1]: 0.09, PROFILES[2]: 0.17},
        "dominated": {"bidders": ["shade"]},
        "alpha_rank": {PROFILES[0]: 0.93, PROFILES[1]: 0.05, PROFILES[2]: 0.02},
        "max_welfare": PROFILES[1], "max_revenue": PROFILES[0],
        "deviation_edges": [[PROFILES[2], PROFILES[1], 0.17], [PROFILES[1], PROFILES[0], 0.09]],
    }
    manifest = {"scenario": {"name": "sp-game", "mechanism": {"kind": "second_price"},
                             "steps": 60, "auctions_per_step": 16, "advertisers": [
                                 {"group": "bidders", "count": 2, "value": 1.0}]},
                "roles": {"bidders": {"players": 2, "field": "strategy", "strategies": {
                    "truthful": {"kind": "truthful"}, "shade": {"kind": "multiplier", "a": 0.5}}}},
                "seeds": 3, "reduction": None, "versions": VERSIONS}
    steps = np.arange(10, 61, 10)
    metrics = pd.DataFrame({"step": np.repeat(steps, 3), "replica": np.tile(np.arange(3), 6),
                            "revenue": 0.33 + 0.01 * rng.normal(size=18), "entry_rate": 1.0})
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", PROFILES[0]).strip("-")
    _write(folder / "profiles" / slug, metrics__parquet=metrics)
    return _write(folder, manifest__json=manifest, analysis__json=analysis,
                  game__parquet=game, outcomes__parquet=outcomes)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from genmarket.market.running.runner import run_scenario
    from genmarket.market.scenario import load_scenario

    base = tmp_path_factory.mktemp("report")
    quick = load_scenario(ROOT / "scenarios/first_price_quickstart.toml", {"steps": 200})
    run_scenario(quick, base / "run", figures=False)
    made = {"run": base / "run", "mosaic": mosaic_run(base / "mosaic", unravel=True),
            "variants": variants_folder(base / "variants"),
            "one_shot": one_shot_folder(base / "one_shot"), "game": game_folder(base / "game")}
    return {k: (p, write_report(p)) for k, p in made.items()}


# ---------------------------------------------------------------- checks of every report


def _images(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*>", html)


@pytest.mark.parametrize("kind", ["run", "mosaic", "variants", "one_shot", "game"])
def test_report_is_self_contained_and_complete(folders, kind):
    folder, (html_path, md_path) = folders[kind]
    assert html_path == folder / "report.html" and md_path == folder / "report.md"
    html, md = html_path.read_text(), md_path.read_text()
    images = _images(html)
    pngs = sorted((folder / "report_figures").glob("*.png"))
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == len(pngs) == len(links) >= 1
    for tag in images:
        payload = re.fullmatch(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*>', tag)
        assert payload, tag[:80]
        assert base64.b64decode(payload.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing is fetched from anywhere: every src/href is inline data, no links or scripts
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r"<(?:link|script|iframe)\b|url\(|@import", html)
    for link in links:
        assert not link.startswith(("/", "http")) and (folder / link).is_file(), link


def test_run_report_states_the_summary(folders):
    folder, (html_path, md_path) = folders["run"]
    s = json.loads((folder / "summary.json").read_text())
    m, ci = s["metrics"], s["ci95"]
    md = shown(md_path.read_text())
    assert (f"Revenue per auction at round 200 is {m['revenue']:.3f} ± {ci['revenue']:.3f} value "
            f"units per auction (95%, 4 replicas).") in md
    assert "first-price-quickstart" in md and "first_price" in md
    # the learned first-price bids are shaded, so bidding one's value is not a best response
    assert m["misreport_gain"] > 0.001
    assert f"Misreporting gains {m['misreport_gain']:.3f} ± {ci['misreport_gain']:.3f}" in md
    assert "is not a best response" in md and "is a best response" not in md
    assert f"{m['mean_bid_ratio']:.3f}" in md
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["versions"]["numpy"] in md
    if manifest["git_commit"]:
        assert manifest["git_commit"] in md
    assert "bid-ratio" in md and "unraveling" not in md


def test_mosaic_report_says_truthful_and_unravelled(folders):
    folder, (_, md_path) = folders["mosaic"]
    md = shown(md_path.read_text())
    s = json.loads((folder / "summary.json").read_text())
    assert s["unraveling"]["step"] == 225
    assert ("Misreporting gains at most 0.000 reward units per auction: truthful reporting is a "
            "best response on the deviation grid.") in md
    assert ("The market unravels: from round 225 on, fewer than 0.50 of the relevant advertisers "
            "enter (final share 0.17)") in md
    assert f"{s['metrics']['logp_opt']:.3f} ± {s['ci95']['logp_opt']:.3f} nats" in md
    assert "unraveling.png" in md and "reward units per auction" in md


def test_variants_report_compares(folders):
    folder, (_, md_path) = folders["variants"]
    md = shown(md_path.read_text())
    assert ("Without the offset the relevant advertisers' entry falls to 0.17 (unravelled at round "
            "225); with the offset it ends at 1.00 (no unraveling).") in md
    comparison = json.loads((folder / "comparison.json").read_text())
    for name, s in comparison.items():
        assert f"{s['metrics']['revenue']:.3f} ± {s['ci95']['revenue']:.3f}" in md, name
        assert f"## Variant {name}" in md
    assert md.index("## Variant offset") < md.index("## Variant no_offset")  # scenario order
    assert "| metric | unit | offset | no_offset |" in md


def test_one_shot_report(folders):
    folder, (_, md_path) = folders["one_shot"]
    md = shown(md_path.read_text())
    cells = {(c["generator"], c["M"]): c for c in
             json.loads((folder / "summary.json").read_text())["cells"]}
    ctx, ref = cells[("context", 16)], cells[("reference", 16)]
    assert ctx["logp_opt"] > ref["logp_opt"]
    assert (f"At M = 16 the context-aware (π_gen) generator reaches the higher log-probability of "
            f"the returned reply under π_r, {ctx['logp_opt']:.3f} ± {ctx['logp_opt_ci95']:.3f} nats, "
            f"against {ref['logp_opt']:.3f}") in md
    assert all(c["ex_ante_ir"] for c in cells.values())
    assert "Ex-ante individual rationality holds in all 6 cells" in md
    assert f"r = {ctx['gain_correlation']:.2f} with the offset" in md


def test_game_report(folders):
    folder, (_, md_path) = folders["game"]
    md = shown(md_path.read_text())
    assert ("Truthful bidding (the profile in which all bidders play truthful) is an equilibrium "
            "(regret 0.003 [0.000, 0.011], 95%") in md
    assert "shade is strictly dominated." in md
    assert "α-Rank puts the most mass, 0.930, on 'bidders: truthful=2'." in md
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    rev = outcomes[outcomes["profile"] == PROFILES[0]]["revenue"]
    assert f"Revenue per auction is highest at '{PROFILES[0]}': {rev.mean():.3f} ±" in md
    assert "no player gains by deviating from 'bidders: truthful=2'" in md
    for name in ("payoffs", "deviation-graph", "outcomes", "alpha-rank", "support-series"):
        assert f"-{name}.png" in md, name


def test_game_per_variant(tmp_path):
    game_folder(tmp_path / "offset")
    (tmp_path / "no_offset").mkdir()  # a variant whose game has not been assembled
    (tmp_path / "variants.json").write_text(json.dumps({"variants": ["offset", "no_offset"]}))
    html_path, md_path = write_report(tmp_path)
    md = shown(md_path.read_text())
    assert "## Variant offset" in md and "### Equilibria" in md
    assert "No game at no_offset/ (no analysis.json)." in md
    assert len(_images(html_path.read_text())) == len(list((tmp_path / "report_figures").glob("*.png")))


def test_unknown_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a genmarket folder: expected a run folder"):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="missing: no such folder"):
        write_report(tmp_path / "missing")


def test_cli_report(folders, tmp_path):
    from genmarket.market.cli import main

    folder = shutil.copytree(folders["mosaic"][0], tmp_path / "copy")
    assert main(["report", str(folder)]) == 0
    assert (folder / "report.html").stat().st_size > 0


# ---------------------------------------------------------------- a real browser


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
PROBE = ("<script>addEventListener('load',()=>{const i=[...document.images];"
         "document.title='IMAGES '+i.length+' DECODED '+"
         "i.filter(x=>x.complete&&x.naturalWidth>0&&x.naturalHeight>0).length;});</script>")


@pytest.mark.skipif(BROWSER is None, reason="no chromium, chromium-browser or google-chrome on "
                    "PATH: the headless rendering check needs one (Debian: apt install chromium)")
@pytest.mark.parametrize("kind", ["run", "variants", "one_shot", "game"])
def test_headless_browser_renders_every_image(folders, kind, tmp_path):
    folder, (html_path, _) = folders[kind]
    html = html_path.read_text()
    n = len(_images(html))
    # a copy with a probe script: the report itself carries no script
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    res = subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu",
                          "--disable-dev-shm-usage", "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert f"<title>IMAGES {n} DECODED {n}</title>" in dom, dom[:300]
    payloads = re.findall(r'<img src="data:image/png;base64,([^"]*)"', dom)
    assert len(payloads) == n and all(len(p) > 1000 for p in payloads)


# ---------------------------------------------------------------- figures that answer the question


def test_run_report_opens_with_the_question_and_the_paper(folders):
    from genmarket.market.scenario import load_scenario
    md = shown(folders["run"][1][1].read_text())
    top = md[:md.index("## What was run")]
    question = load_scenario(ROOT / "scenarios/first_price_quickstart.toml").description
    assert question and f"Question: {question}" in top
    assert f"Mechanism: first_price, from {family_of('first_price').cite('first_price')}." in top
    assert "Edelman" not in top  # the GSP paper is cited for gsp, not for first price


def test_run_report_draws_theory_and_no_fixed_entry(folders):
    """The quickstart is the textbook case (3 bidders, U[0, 1], always in, one slot): the Bayes-
    Nash lines are stated; entry cannot change, so it is said in words and not drawn."""
    md = shown(folders["run"][1][1].read_text())
    assert "Bayes-Nash bid (n-1)/n (n=3) = 0.667" in md
    assert "Bayes-Nash revenue h(n-1)/(n+1) (n=3, h=1) = 0.500" in md
    assert "-entry.png" not in md and "Entry: every advertiser always enters." in md
    assert "95% t-interval across 4 replicas" in md and "1.96" not in md


def test_every_panel_holds_one_kind_of_quantity():
    """No two quantities of different units on one axis, in every family."""
    from genmarket.market.engine.seam import ENGINE_METRICS, families
    for fam in families():
        for panel in fam.panels:
            units = {s.unit for s in (*fam.metrics, *ENGINE_METRICS) if s.panel == panel.name}
            assert len(units) <= 1, (fam.name, panel.name, units)


def test_bands_are_the_summaries_t_interval():
    from genmarket.market.reports import figures as F
    from genmarket.market.running.summary import half_width95
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 30):
        x = rng.normal(size=n)
        lo, hi = F.interval95(x)
        assert (lo + hi) / 2 == pytest.approx(x.mean())
        assert (hi - lo) / 2 == pytest.approx(half_width95(pd.Series(x)))
    df = pd.DataFrame({"replica": [0, 1], "step": [1, 1], "y": [0.0, 1.0]})
    assert F._errorbar(df, "replica") is F.interval95
    assert F._errorbar(df[df["replica"] == 0], "replica") is None


def test_one_colour_per_name_in_every_panel():
    """panels() draws each hue value in the colour the report's palette gives it, whatever the
    order the values come in."""
    from matplotlib.colors import to_rgb

    from genmarket.market.reports import figures as F
    df = pd.DataFrame({"step": [1, 2] * 3, "replica": 0, "variant": ["b"] * 2 + ["a"] * 2 + ["c"] * 2,
                       "x": np.arange(6.0), "y": np.arange(6.0) ** 2})
    colours = F.palette(["a", "b", "c"])
    fig = F.panels(df, {"x": "x", "y": "y"}, "variant", colours=colours)
    for ax in fig.axes[:2]:
        drawn = [to_rgb(line.get_color()) for line in ax.get_lines()[:3]]
        assert drawn == [to_rgb(colours[v]) for v in ("a", "b", "c")]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "c"]
    F.plt.close(fig)


def test_a_series_that_never_changes_is_not_drawn():
    from genmarket.market.reports.run_figures import constant_panels, panel_figures
    fam = family_of("first_price")
    steps = np.repeat([1, 10, 20], 2)
    m = pd.DataFrame({"step": steps, "replica": np.tile([0, 1], 3), "revenue": np.arange(6.0),
                      "entry_rate": 1.0, "entry_rate_bidders": 1.0, "mean_bid_ratio": 0.5})
    drawn = []
    for p, fig in panel_figures(m, fam, ["bidders"]):
        drawn.append(p.name)
        fig.clf()
    assert drawn == ["revenue"]
    still = {p.name: v for p, v in constant_panels(m, fam, ["bidders"])}
    assert still == {"entry": {"entry rate": 1.0, "bidders": 1.0}, "bid_ratio": {"bid / value": 0.5}}


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_every_scenario_states_its_question(path):
    from genmarket.market.scenario import validate_scenario
    text = validate_scenario(tomllib.loads(path.read_text())).description  # no machine checks
    sentences = re.findall(r"[.?!](?:\s|$)", text)
    assert text and 1 <= len(sentences) <= 3, text


def test_misreport_sentence_claims_only_what_its_interval_supports():
    """A misreport gain whose interval reaches below the 0.0005 threshold, or a Monte Carlo
    estimate from one replica (no interval), is not stated as 'not a best response'."""
    from genmarket.market.engine.seam import family_of
    from genmarket.market.reports.text import run_sentences

    diffusion = family_of("diffusion")  # its misreport gain is a Monte Carlo estimate
    one = run_sentences({"metrics": {"misreport_gain": 0.004}, "ci95": {}, "replicas": 1}, {},
                        diffusion)
    assert any("too little to tell" in s for s in one)
    assert not any("is not a best response" in s for s in one)
    wide = run_sentences({"metrics": {"misreport_gain": 0.004},
                          "ci95": {"misreport_gain": 0.01}, "replicas": 4}, {}, diffusion)
    assert any("cannot tell whether" in s for s in wide)
    tight = run_sentences({"metrics": {"misreport_gain": 0.004},
                           "ci95": {"misreport_gain": 0.001}, "replicas": 4}, {}, diffusion)
    assert any("is not a best response" in s for s in tight)
