"""genmarket from Python: `genmarket.run`, the Mesa model's DataCollector and `mesa.batch_run`."""

from __future__ import annotations

from pathlib import Path

import mesa
import numpy as np
import pandas as pd
import torch

import genmarket
from genmarket.market.running.runner import run_scenario
from genmarket.market.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
FIRST_PRICE = ROOT / "scenarios" / "first_price_quickstart.toml"


def test_run_from_python_gives_the_cli_tables_and_its_thread_setting(tmp_path):
    torch.set_num_threads(2)
    res = genmarket.run(FIRST_PRICE, steps=100, seed=4)
    assert torch.get_num_threads() == 1 and res.folder is None
    ref = run_scenario(load_scenario(FIRST_PRICE, {"steps": 100, "seed": 4}), tmp_path / "r",
                       figures=False)
    pd.testing.assert_frame_equal(res.metrics, pd.read_parquet(ref.folder / "metrics.parquet"))
    pd.testing.assert_frame_equal(res.agents, pd.read_parquet(ref.folder / "agents.parquet"))
    assert res.summary == ref.summary


def test_overrides_reach_into_sections(tmp_path):
    res = genmarket.run(FIRST_PRICE, out=tmp_path / "o", steps=50, mechanism__reserve=0.4)
    assert res.folder == tmp_path / "o"
    m = genmarket.Market(FIRST_PRICE, mechanism__reserve=0.4)
    assert m.scenario.mechanism.reserve == 0.4 and m.scenario.steps == 3000


def test_the_datacollector_has_a_column_per_metric_and_a_row_per_step():
    model = genmarket.Market(FIRST_PRICE, steps=60)
    collected = {}
    while model.running:
        model.step()
        if model.steps % model.every == 0 or model.steps == 1:  # round 1 starts the series
            collected[model.steps] = {k: float(np.mean(v)) for k, v in model.step_metrics.items()}
    assert model.steps == 60
    df = model.datacollector.get_model_vars_dataframe()
    assert list(df.columns) == model.metric_names and len(df) == 61  # row 0: before any round
    for s in range(61):
        assert df.loc[s].notna().any() == (s in collected), s
    for s, means in collected.items():
        for name in model.metric_names:
            assert df.at[s, name] == means[name], (s, name)
    agents = model.datacollector.get_agent_vars_dataframe()
    assert set(agents.index.get_level_values("Step")) == {0, *collected}


def test_mesa_batch_run_sweeps_the_market():
    rows = pd.DataFrame(mesa.batch_run(
        genmarket.Market, {"scenario": str(FIRST_PRICE), "steps": 60, "seed": [1, 2]},
        max_steps=50, data_collection_period=25, display_progress=False))
    got = rows.dropna(subset=["revenue"]).groupby(["seed", "Step"])["revenue"].first()
    assert sorted(got.index) == [(1, 25), (1, 50), (2, 25), (2, 50)]
    for seed in (1, 2):
        model = genmarket.Market(FIRST_PRICE, steps=60, seed=seed)
        for _ in range(50):
            model.step()
        want = model.datacollector.get_model_vars_dataframe()["revenue"]
        assert got[(seed, 25)] == want[25] and got[(seed, 50)] == want[50]
