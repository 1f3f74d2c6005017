"""What the family restructure must not break: run folders written before it still resume, and
validated scenarios compare equal and cross process boundaries (pickle)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_a_run_folder_written_before_the_families_resumes(tmp_path):
    sc = load_scenario(ROOT / "scenarios" / "first_price_quickstart.toml", {"steps": 60})
    whole = run_scenario(sc, tmp_path / "whole", figures=False)
    folder = tmp_path / "old"
    with pytest.raises(Interrupted):
        run_scenario(sc, folder, figures=False, stop_after=30)
    # the old schema wrote every kind's mechanism fields into the manifest
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["scenario"]["mechanism"].update(tau=1.0, offset=True, candidates=8,
                                             generator="context")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    resumed = run_scenario(sc, folder, resume=True, figures=False)
    pd.testing.assert_frame_equal(pd.read_parquet(resumed.folder / "metrics.parquet"),
                                  pd.read_parquet(whole.folder / "metrics.parquet"))


def test_scenarios_compare_equal_and_pickle(scenario_dict):
    a, b = validate_scenario(scenario_dict), validate_scenario(scenario_dict)
    assert a == b and type(a) is type(b)
    again = pickle.loads(pickle.dumps(a))
    assert again == a and again.mechanism.kind == "second_price"
