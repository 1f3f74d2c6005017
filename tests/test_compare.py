"""`genmarket compare`: strategy specs, profile scenarios, and the game folder end to end."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from genmarket.market.games.compare import profile_scenario, run_compare
from genmarket.market.games.roles import make_roles, parse_strategies
from genmarket.market.scenario import validate_scenario

ROOT = Path(__file__).resolve().parent.parent

GAME = {
    "name": "compare-test",
    "seed": 5,
    "steps": 100,
    "auctions_per_step": 64,
    "mechanism": {"kind": "second_price"},
    "feedback": {"kind": "full"},
    "advertisers": [{"group": "bidders", "count": 2,
                     "value": {"dist": "uniform", "low": 0.0, "high": 1.0}}],
    "metrics": {"every": 10, "deviation_grid": {"low": 0.5, "high": 1.5, "n": 3}},
}
STRATEGIES = "truthful=truthful,shade=multiplier:0.5"


def test_parse_strategies():
    got = parse_strategies("truthful=truthful, shade=multiplier:0.8, up=shift:0.1, "
                           "learn=exp3:eta=0.1:multipliers=0-1.5-16")
    assert got == {"truthful": {"kind": "truthful"}, "shade": {"kind": "multiplier", "a": 0.8},
                   "up": {"kind": "shift", "s": 0.1},
                   "learn": {"kind": "exp3", "eta": 0.1,
                             "multipliers": {"low": 0.0, "high": 1.5, "n": 16}}}
    for bad in ("truthful", "a=truthful,a=multiplier:1", "9x=truthful", "x=exp3:0.1", ""):
        with pytest.raises(ValueError, match="--strategies"):
            parse_strategies(bad)


def test_profile_scenario_splits_the_role_group():
    d = copy.deepcopy(GAME)
    d["metrics"]["agents"] = False  # payoffs come from genmarket.agents.parquet: the profile needs it
    scenario = validate_scenario(d)
    roles = make_roles(scenario, [(None, "truthful=truthful,shade=multiplier:0.5,over=multiplier:2")])
    base = scenario.model_dump(mode="python", exclude_unset=True)
    d = profile_scenario(base, roles, {"bidders": {"truthful": 1, "shade": 0, "over": 1}}, seeds=3)
    sc = validate_scenario(d)
    assert sc.replicas == 3
    assert [(g.group, g.count, g.strategy.kind) for g in sc.advertisers] == [
        ("bidders__truthful", 1, "truthful"), ("bidders__over", 1, "multiplier")]
    assert sc.advertisers[1].strategy.a == 2.0
    assert sc.metrics.agents


def test_roles_are_checked():
    scenario = validate_scenario(copy.deepcopy(GAME))
    with pytest.raises(ValueError, match="not a group of the scenario"):
        make_roles(scenario, [("nobody", STRATEGIES)])


@pytest.fixture(scope="module")
def game(tmp_path_factory):
    out = tmp_path_factory.mktemp("game") / "g"
    scenario = validate_scenario(copy.deepcopy(GAME))
    roles = make_roles(scenario, [(None, STRATEGIES)])
    analysis = run_compare(scenario, roles, out, seeds=2, workers=2)
    return out, analysis, scenario, roles


def test_game_folder_has_every_file(game):
    out, analysis, _, _ = game
    for f in ("manifest.json", "game.parquet", "outcomes.parquet", "game.json",
              "payoff_table.csv", "analysis.json"):
        assert (out / f).stat().st_size > 0, f
    tidy = pd.read_parquet(out / "game.parquet")
    assert set(tidy.columns) >= {"profile", "role", "strategy", "count", "seed", "payoff"}
    assert tidy["profile"].nunique() == 3  # 2 players, 2 strategies: (2,0) (1,1) (0,2)
    assert set(tidy["seed"]) == {0, 1}


def test_second_price_truthful_is_the_equilibrium(game):
    """Bidding the value is weakly dominant in second price; half the value loses auctions the
    bidder should win, so the only equilibrium is pure truthful, with ~0 regret."""
    _, analysis, _, _ = game
    eqs = analysis["equilibria"]
    assert eqs, analysis
    best = eqs[0]
    assert best["mixture"]["bidders"]["truthful"] > 0.99 and best["regret"] < 0.01
    # 2 seeds are too few for a bootstrap interval: none, and the reason, instead of [0, 0]
    assert best["regret_ci95"] is None
    assert best["regret_ci_note"] == "2 seeds: at least 5 needed for a bootstrap interval"


def test_rerun_skips_finished_profiles_and_redoes_lost_ones(game):
    out, analysis, scenario, roles = game
    done = sorted((out / "profiles").glob("*.outcomes.parquet"))
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    lost = done[0]
    lost.with_name(lost.name.replace(".outcomes", "")).unlink()
    again = run_compare(scenario, roles, out, seeds=2, workers=1)
    after = {p.name: p.stat().st_mtime_ns for p in sorted((out / "profiles").glob("*.outcomes.parquet"))}
    changed = [k for k in stamps if after[k] != stamps[k]]
    assert changed == [lost.name]
    assert again["equilibria"][0]["mixture"] == analysis["equilibria"][0]["mixture"]


def test_a_different_game_in_the_same_folder_is_refused(game):
    out, _, scenario, _ = game
    roles = make_roles(scenario, [(None, "truthful=truthful,over=multiplier:2")])
    with pytest.raises(Exception, match="different game"):
        run_compare(scenario, roles, out, seeds=2)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_backend_gives_the_same_game(game, tmp_path):
    out, _, scenario, roles = game
    run_compare(scenario, roles, tmp_path / "ray", seeds=2, backend="ray", workers=2)
    a = pd.read_parquet(out / "game.parquet").sort_values(["profile", "strategy", "seed"])
    b = pd.read_parquet(tmp_path / "ray" / "game.parquet").sort_values(["profile", "strategy", "seed"])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_cli_compare_then_report(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'name = "cli-game"\nsteps = 40\nauctions_per_step = 8\n'
        '[mechanism]\nkind = "first_price"\n'
        '[[advertisers]]\ngroup = "bidders"\ncount = 2\n'
        'value = { dist = "uniform", low = 0.0, high = 1.0 }\n'
        '[metrics]\nevery = 10\n')
    out = tmp_path / "g"
    res = subprocess.run([sys.executable, "-m", "genmarket.market.cli", "compare", str(scenario),
                          "--strategies", "truthful=truthful,shade=multiplier:0.6",
                          "--seeds", "2", "--out", str(out), "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "equilibria" in res.stdout
    assert "no interval: 2 seeds: at least 5 needed for a bootstrap interval" in res.stdout
    analysis = json.loads((out / "analysis.json").read_text())
    # first price: bidding the value wins nothing, so shading is the equilibrium
    assert analysis["equilibria"][0]["mixture"]["bidders"]["shade"] > 0.99
    rep = subprocess.run([sys.executable, "-m", "genmarket.market.cli", "report", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert (out / "report.html").stat().st_size > 0 and (out / "report.md").stat().st_size > 0


def test_deviation_preserving_reduction_simulates_fewer_profiles(tmp_path):
    """3 players reduced to 2 with 3 strategies: each reduced profile needs the full profiles where
    one player keeps its strategy and the other counts double, so 9 of the 10 full profiles (all
    but truthful=1 shade=1 over=1); the reduced game's equilibrium is still truthful."""
    d = copy.deepcopy(GAME)
    d["advertisers"][0]["count"] = 3
    scenario = validate_scenario(d)
    roles = make_roles(scenario, [(None, STRATEGIES + ",over=multiplier:1.5")])
    analysis = run_compare(scenario, roles, tmp_path / "dpr", seeds=2, workers=2,
                           reduce={"bidders": 2})
    simulated = list((tmp_path / "dpr" / "profiles").glob("*.outcomes.parquet"))
    assert len(simulated) == 9  # out of C(3 + 2, 2) = 10
    assert not any("truthful-1-shade-1-over-1" in p.name for p in simulated)
    game = json.loads((tmp_path / "dpr" / "game.json").read_text())
    assert [r["count"] for r in game["roles"]] == [2]
    assert analysis["equilibria"][0]["mixture"]["bidders"]["truthful"] > 0.99


def test_a_crashing_profile_is_reported_not_fatal_to_the_others(tmp_path):
    from genmarket.market.games.compare import run_profile
    from genmarket.market.games.submit import submit_local

    scenario = validate_scenario(copy.deepcopy(GAME))
    roles = make_roles(scenario, [(None, STRATEGIES)])
    good = profile_scenario(scenario.model_dump(mode="python", exclude_unset=True), roles,
                            {"bidders": {"truthful": 2, "shade": 0}}, seeds=1)
    bad = copy.deepcopy(good)
    bad["steps"] = -1  # fails inside the worker
    jobs = [(good, str(tmp_path / "a"), "good", roles), (bad, str(tmp_path / "b"), "bad", roles)]
    results = {job[2]: (res, exc) for job, res, exc in submit_local(run_profile, jobs, 2)}
    assert results["good"][1] is None and len(results["good"][0][0]) == 1  # 1 strategy x 1 seed
    assert results["bad"][0] is None and "steps" in str(results["bad"][1])
