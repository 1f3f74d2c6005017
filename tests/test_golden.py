"""Golden output: the quickstart's summary is pinned, so an unintended change in behaviour fails.

An intended change regenerates the file in the same commit, with a message that says why:
    GENMARKET_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

import json
import math
import os
from pathlib import Path

from genmarket.market.running.runner import run_scenario
from genmarket.market.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "quickstart_summary.json"


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, f"{path}: {a} vs {b}"
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{path}: {a} != golden {b}"
    else:
        assert a == b, f"{path}: {a} != golden {b}"


def test_quickstart_summary_matches_golden(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.toml")
    summary = run_scenario(scenario, tmp_path / "q", figures=False).summary
    if os.environ.get("GENMARKET_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _close(summary, json.loads(GOLDEN.read_text()))
