"""The `genmarket` command as a new user meets it: one error prefix and exit status for every bad
invocation (never a traceback), `--version`, compare checking everything before it writes, and
the run folder's files (`step` first, `parts/` gone once merged)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import genmarket
from genmarket.market.cli import PREFIX, main
from genmarket.market.running.runner import Interrupted, run_scenario
from genmarket.market.scenario import validate_scenario

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "scenarios" / "first_price_quickstart.toml")
ONE_SHOT = str(ROOT / "scenarios" / "mosaic_paper.toml")

SMALL = """\
name = "cli-test"
seed = 1
steps = 40
auctions_per_step = 16
[mechanism]
kind = "second_price"
[[advertisers]]
group = "bidders"
count = 2
value = { dist = "uniform", low = 0.0, high = 1.0 }
[metrics]
every = 10
deviation_grid = { low = 0.5, high = 1.5, n = 3 }
"""


@pytest.fixture()
def small(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def _bad_invocations(tmp: Path, small: Path) -> list[tuple[list[str], str]]:
    """(argv, a piece of the expected message); all are input errors (status 2)."""
    (tmp / "notes.txt").write_text("this is not TOML\n")
    (tmp / "binary.toml").write_bytes(bytes(range(256)))
    (tmp / "empty").mkdir()
    (tmp / "a-file").write_text("x")
    return [
        ([], "required"),
        (["bogus"], "invalid choice"),
        (["run"], "required"),
        (["run", QUICK, "--steps", "many"], "invalid int value"),
        (["run", str(tmp / "missing.toml")], "file not found"),
        (["run", str(tmp)], "is a directory"),
        (["run", str(tmp / "notes.txt")], "not valid TOML"),
        (["run", str(tmp / "binary.toml")], "not a text file"),
        (["validate", str(tmp / "notes.txt")], "not valid TOML"),
        (["run", str(small), "--steps", "0"], "steps = 0"),
        (["run", str(small), "--threads", "0"], "--threads = 0"),
        (["run", str(small), "--resume"], "--resume needs --out"),
        (["run", str(small), "--out", str(tmp / "empty"), "--resume"], "not a run folder"),
        (["run", str(small), "--out", str(tmp / "a-file" / "run"), "--quiet"], "a-file"),
        (["report", str(tmp / "empty")], "not a genmarket folder"),
        (["compare", str(small), "--strategies", "a=hedge:eta=abc"], "eta = 'abc': must be a number"),
        (["compare", str(small), "--strategies", "a=hedge:etaa=1"], "etaa: unknown key"),
        (["compare", str(small), "--strategies", "a=qlearn"], "kind = 'qlearn': not one of"),
        (["compare", str(small), "--strategies", "truthful"], "is not NAME=SPEC"),
        (["compare", str(small), "--strategies", "a=truthful", "--seeds", "0"], "--seeds = 0"),
        (["compare", str(small), "--strategies", "a=truthful", "--reduce", "x"], "ROLE=N"),
        (["compare", str(small), "--strategies", "a=truthful", "--reduce", "nobody=1"],
         "not a role of this game"),
        (["compare", str(small), "--role", "nobody", "--strategies", "a=truthful"],
         "not a group of the scenario"),
        (["compare", str(small), "--role", "bidders", "--role", "bidders", "--strategies",
          "a=truthful"], "one --role per --strategies"),
        (["compare", ONE_SHOT, "--strategies", "a=truthful"], "not a one-shot"),
    ]


def test_every_bad_invocation_is_one_prefixed_message(tmp_path, small, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written here either
    for argv, expected in _bad_invocations(tmp_path, small):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            status = exc.code
        err = capsys.readouterr().err
        assert status == 2, (argv, status, err)
        assert PREFIX in err and expected in err, (argv, err)
        assert "Traceback" not in err, (argv, err)
    assert not (tmp_path / "games").exists()  # no compare above made its game folder


@pytest.mark.parametrize("argv", [["run", "."], ["run", "scenarios/quickstart.toml", "--out",
                                                 "/dev/null/run", "--quiet"]])
def test_no_traceback_from_the_real_command(argv):
    res = subprocess.run([sys.executable, "-m", "genmarket.market.cli", *argv], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(PREFIX) and "Traceback" not in res.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"genmarket {genmarket.__version__}"


def test_a_malformed_compare_writes_nothing_and_the_corrected_one_runs(tmp_path, small, capsys):
    out = tmp_path / "game"
    args = ["compare", str(small), "--seeds", "2", "--quiet", "--out", str(out)]
    assert main(args + ["--strategies", "t=truthful,s=multiplier:abc"]) == 2
    assert "s=multiplier:abc: a = 'abc': must be a number" in capsys.readouterr().err
    assert not out.exists()
    assert main(args + ["--strategies", "t=truthful,s=multiplier:0.5"]) == 0
    assert (out / "analysis.json").exists()
    # the same folder, another game: refused, naming every field that differs, old vs new
    capsys.readouterr()
    assert main(args[:3] + ["3"] + args[4:] + ["--strategies", "t=truthful,s=multiplier:0.6"]) == 2
    err = capsys.readouterr().err
    assert "holds a different game" in err
    assert "roles.bidders.strategies.s.a: 0.5 vs 0.6" in err and "seeds: 2 vs 3" in err
    # compare's profile folders keep no parts/ once finished
    profiles = [p for p in (out / "profiles").iterdir() if p.is_dir()]
    assert profiles and not any((p / "parts").exists() for p in profiles)


def test_compare_interrupted_with_workers_leaves_no_traceback(tmp_path, small):
    slow = small.read_text().replace("steps = 40", "steps = 20000")
    (tmp_path / "slow.toml").write_text(slow)
    out = tmp_path / "game"
    proc = subprocess.Popen(
        [sys.executable, "-m", "genmarket.market.cli", "compare", str(tmp_path / "slow.toml"),
         "--strategies", "t=truthful,s=multiplier:0.5", "--workers", "2", "--seeds", "1",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("profiles/*/checkpoint/state.json")):
        time.sleep(0.05)
    import os

    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.startswith(PREFIX) and "interrupted" in err and "Traceback" not in err, err


def _small(**over):
    import tomllib

    d = tomllib.loads(SMALL)
    d.update(over)
    return d


def test_step_is_the_first_column_and_parts_go_once_merged(tmp_path):
    folder = tmp_path / "run"
    d = _small(advertisers=[{"group": "bidders", "count": 2, "strategy": {"kind": "hedge"},
                             "value": {"dist": "uniform", "low": 0.0, "high": 1.0}}])
    whole = run_scenario(validate_scenario({**d, "steps": 60}), tmp_path / "whole", figures=False)
    with pytest.raises(Interrupted):
        run_scenario(validate_scenario(d), folder, figures=False, stop_after=25)
    assert list((folder / "parts").glob("metrics-*.parquet"))  # unfinished: the parts stay
    run_scenario(validate_scenario(d), folder, resume=True, figures=False)
    assert not (folder / "parts").exists()
    for name, keys in (("metrics", ["step", "replica"]), ("agents", ["step", "replica", "agent"])):
        df = pd.read_parquet(folder / f"{name}.parquet")
        assert list(df.columns[:len(keys)]) == keys
    # extended: the final tables are read back, the result is the uninterrupted 60-round run
    run_scenario(validate_scenario({**d, "steps": 60}), folder, resume=True, figures=False)
    assert not (folder / "parts").exists()
    for name in ("metrics.parquet", "agents.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(folder / name),
                                      pd.read_parquet(whole.folder / name))
    assert json.loads((folder / "manifest.json").read_text())["scenario"]["steps"] == 60


def test_a_variants_folder_keeps_no_parts(tmp_path):
    d = _small(variants=[{"name": "low", "mechanism": {"reserve": 0.0}},
                         {"name": "high", "mechanism": {"reserve": 0.3}}])
    res = run_scenario(validate_scenario(d), tmp_path / "v", figures=False)
    assert not list(res.folder.rglob("parts"))
    assert (res.folder / "low" / "metrics.parquet").exists()
