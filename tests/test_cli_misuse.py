"""The command misused every way a user can (issue 10): each misuse is refused with one line that
says what is wrong and what to do, with the right exit status, and never a Python traceback.

`CASES` is the corpus: (id, argv, exit status, a distinctive part of the first message line).
The argv's `{name}` fields are paths that `world` makes once (a finished run folder copied and
damaged in different ways, a file where a folder belongs, ...). Most cases call `main` in this
process; the lock and Ctrl-C cases start real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genmarket.market.cli import PREFIX, main
from genmarket.market.running import lock as lock_module
from genmarket.market.running.lock import LOCK, folder_lock

ROOT = Path(__file__).resolve().parent.parent
ONE_SHOT = str(ROOT / "scenarios" / "mosaic_paper.toml")

SMALL = """\
name = "misuse"
seed = 1
steps = 20
auctions_per_step = 8
[mechanism]
kind = "second_price"
[[advertisers]]
group = "bidders"
count = 2
value = { dist = "uniform", low = 0.0, high = 1.0 }
[metrics]
every = 10
"""

HALF = "never reached its first checkpoint"
BUSY = "another genmarket process"

CASES: list[tuple[str, list[str], int, str]] = [
    # usage errors: argparse's own message
    ("no-command", [], 2, "required"),
    ("unknown-command", ["bogus"], 2, "invalid choice"),
    ("unknown-option", ["run", "{small}", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("bad-int", ["run", "{small}", "--seed", "abc"], 2, "invalid int value: 'abc'"),
    ("bad-backend", ["compare", "{small}", "--strategies", "a=truthful", "--backend", "dask"], 2,
     "invalid choice: 'dask'"),
    ("view-bad-port", ["view", "{small}", "--port", "abc"], 2, "invalid int value"),
    ("report-unknown-option", ["report", "{run}", "--bogus"], 2, "unrecognized arguments"),
    ("empty-out", ["run", "{small}", "--out", ""], 2, "--out: '': an empty path"),
    # scenario paths
    ("run-missing", ["run", "{tmp}/missing.toml"], 2, "file not found"),
    ("run-directory", ["run", "{tmp}"], 2, "is a directory"),
    ("validate-directory", ["validate", "{tmp}"], 2, "is a directory"),
    ("validate-binary", ["validate", "{binary}"], 2, "not a text file"),
    ("view-directory", ["view", "{tmp}"], 2, "is a directory"),
    ("view-missing", ["view", "{tmp}/missing.toml"], 2, "file not found"),
    ("view-one-shot", ["view", ONE_SHOT], 2, "not a repeated market"),
    # run: options and --out
    ("run-steps-negative", ["run", "{small}", "--steps", "-5"], 2, "steps = -5"),
    ("run-replicas-zero", ["run", "{small}", "--replicas", "0"], 2, "replicas = 0"),
    ("run-threads-zero", ["run", "{small}", "--threads", "0"], 2, "--threads = 0"),
    ("run-device-unknown", ["run", "{small}", "--device", "tpu", "--out", "{tmp}/tpu"], 2,
     "device"),
    ("run-device-absent-gpu", ["run", "{small}", "--device", "cuda:7", "--out", "{tmp}/gpu"], 2,
     "cuda:7"),
    ("run-out-is-file", ["run", "{small}", "--out", "{afile}", "--quiet"], 2,
     "is a file, not a folder"),
    ("run-out-under-file", ["run", "{small}", "--out", "{afile}/run", "--quiet"], 2,
     "is a file, not a folder"),
    ("run-out-holds-run", ["run", "{small}", "--out", "{run}", "--quiet"], 2,
     "already holds a run: pass --resume"),
    ("run-locked", ["run", "{small}", "--out", "{locked}", "--quiet"], 2, BUSY),
    # run --resume on folders that cannot be resumed
    ("resume-no-out", ["run", "{small}", "--resume"], 2, "--resume needs --out"),
    ("resume-missing-folder", ["run", "{small}", "--resume", "--out", "{tmp}/nowhere"], 2,
     "not a run folder"),
    ("resume-empty-folder", ["run", "{small}", "--resume", "--out", "{empty}"], 2,
     "not a run folder"),
    ("resume-manifest-not-json", ["run", "{small}", "--resume", "--out", "{m_garbage}"], 2,
     "manifest.json: not valid JSON"),
    ("resume-manifest-truncated", ["run", "{small}", "--resume", "--out", "{m_truncated}"], 2,
     "manifest.json: not valid JSON"),
    ("resume-manifest-list", ["run", "{small}", "--resume", "--out", "{m_list}"], 2,
     "manifest.json: not a run manifest"),
    ("resume-manifest-old", ["run", "{small}", "--resume", "--out", "{m_old}"], 2,
     "manifest.json: not a run manifest"),
    ("resume-state-truncated", ["run", "{small}", "--resume", "--out", "{s_truncated}",
                                "--steps", "30"], 2, "state.json"),
    ("resume-other-scenario", ["run", "{small}", "--resume", "--out", "{run}", "--seed", "9"], 2,
     "differs in seed"),
    ("resume-locked", ["run", "{small}", "--resume", "--out", "{locked_run}"], 2, BUSY),
    # report
    ("report-missing", ["report", "{tmp}/nowhere"], 2, "no such folder"),
    ("report-file", ["report", "{afile}"], 2, "is a file, not a folder"),
    ("report-empty", ["report", "{empty}"], 2, "not a genmarket folder"),
    ("report-no-manifest", ["report", "{r_no_manifest}"], 2, "manifest.json: missing"),
    ("report-no-summary", ["report", "{r_no_summary}"], 2, "has not finished"),
    ("report-manifest-not-json", ["report", "{m_garbage}"], 2, "manifest.json: not valid JSON"),
    ("report-manifest-truncated", ["report", "{m_truncated}"], 2, "manifest.json: not valid JSON"),
    ("report-manifest-list", ["report", "{m_list}"], 2, "manifest.json: not a JSON object"),
    ("report-manifest-old", ["report", "{m_old}"], 2, "manifest.json: no 'scenario'"),
    ("report-summary-not-json", ["report", "{r_summary_garbage}"], 2,
     "summary.json: not valid JSON"),
    ("report-summary-types", ["report", "{r_summary_types}"], 2, "summary.json"),
    ("report-summary-old", ["report", "{r_summary_old}"], 2, "another genmarket version"),
    ("report-analysis-not-json", ["report", "{g_garbage}"], 2, "analysis.json: not valid JSON"),
    # compare: every spec checked before anything is written
    ("compare-multiplier-abc", ["compare", "{small}", "--strategies", "t=truthful,s=multiplier:abc",
                                "--out", "{tmp}/g1"], 2, "s=multiplier:abc: a = 'abc'"),
    ("compare-grid-two-parts", ["compare", "{small}", "--strategies", "h=hedge:multipliers=0-1.5",
                                "--out", "{tmp}/g2"], 2, "must be LOW-HIGH-N"),
    ("compare-unknown-kind", ["compare", "{small}", "--strategies", "x=nosuch", "--out",
                              "{tmp}/g3"], 2, "x=nosuch: kind = 'nosuch': not one of"),
    ("compare-empty-list", ["compare", "{small}", "--strategies", "", "--out", "{tmp}/g4"], 2,
     "no strategy given"),
    ("compare-only-commas", ["compare", "{small}", "--strategies", " , ,", "--out", "{tmp}/g5"], 2,
     "no strategy given"),
    ("compare-name-twice", ["compare", "{small}", "--strategies", "a=truthful,a=hedge", "--out",
                            "{tmp}/g6"], 2, "'a' is given twice"),
    ("compare-arg-twice", ["compare", "{small}", "--strategies", "a=multiplier:0.5:0.6", "--out",
                           "{tmp}/g7"], 2, "a is given twice"),
    ("compare-positional-arg", ["compare", "{small}", "--strategies", "h=hedge:0.1", "--out",
                                "{tmp}/g8"], 2, "as key=value"),
    ("compare-workers-zero", ["compare", "{small}", "--strategies", "a=truthful", "--workers",
                              "0"], 2, "--workers = 0"),
    ("compare-out-is-file", ["compare", "{small}", "--strategies", "a=truthful", "--quiet",
                             "--out", "{afile}"], 2, "is a file, not a folder"),
    ("compare-out-under-file", ["compare", "{small}", "--strategies", "a=truthful", "--quiet",
                                "--out", "{afile}/game"], 2, "is a file, not a folder"),
    ("compare-locked", ["compare", "{small}", "--strategies", "a=truthful", "--quiet", "--out",
                        "{locked}"], 2, BUSY),
]


def _damage(template: Path, to: Path, name: str, text: str | None) -> str:
    """A copy of run folder `template` at `to` with file `name` replaced by `text` (removed when
    None); returns the copy's path."""
    shutil.copytree(template, to)
    if text is None:
        (to / name).unlink()
    else:
        (to / name).write_text(text)
    return str(to)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    return make_world(tmp_path_factory.mktemp("misuse"))


def make_world(tmp: Path) -> dict[str, str]:
    """The paths the corpus names, made in `tmp`: a scenario, a finished run folder, damaged
    copies of it, ..."""
    (tmp / "small.toml").write_text(SMALL)
    (tmp / "binary.toml").write_bytes(bytes(range(256)))
    (tmp / "afile").write_text("x")
    (tmp / "empty").mkdir()
    (tmp / "locked").mkdir()
    run = tmp / "run"
    assert main(["run", str(tmp / "small.toml"), "--out", str(run), "--quiet", "--no-figures"]) == 0
    manifest = (run / "manifest.json").read_text()
    paths = {"tmp": str(tmp), "small": str(tmp / "small.toml"), "binary": str(tmp / "binary.toml"),
             "afile": str(tmp / "afile"), "empty": str(tmp / "empty"), "run": str(run),
             "locked": str(tmp / "locked")}
    damaged = {
        "m_garbage": ("manifest.json", "not json {"),
        "m_truncated": ("manifest.json", manifest[: len(manifest) // 2]),
        "m_list": ("manifest.json", "[1, 2]"),
        "m_old": ("manifest.json", json.dumps({"seed": 1, "device": "cpu"})),
        "s_truncated": ("checkpoint/state.json", '{"steps": 2'),
        "r_no_manifest": ("manifest.json", None),
        "r_no_summary": ("summary.json", None),
        "r_summary_garbage": ("summary.json", "\x00\x01"),
        "r_summary_types": ("summary.json", json.dumps({"metrics": 3, "window": "x"})),
        "r_summary_old": ("summary.json", json.dumps({"metrics": {}})),
    }
    for key, (name, text) in damaged.items():
        paths[key] = _damage(run, tmp / key, name, text)
    paths["locked_run"] = _damage(run, tmp / "locked_run", "report.md", "")
    game = tmp / "g_garbage"
    game.mkdir()
    (game / "manifest.json").write_text(json.dumps({**json.loads(manifest), "roles": {}}))
    (game / "game.parquet").write_bytes(b"")
    (game / "analysis.json").write_text('{"equilibria": [')
    paths["g_garbage"] = str(game)
    return paths


def _call(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_misuse_is_one_clear_line(case, world, capsys, monkeypatch, tmp_path):
    _, argv, status, expected = case
    monkeypatch.chdir(tmp_path)  # a default --out would land here: nothing may be written
    argv = [a.format(**world) for a in argv]
    held = [folder_lock(world[k], create=False) for k in ("locked", "locked_run")]
    for h in held:  # another process's lock: this process's own lock conflicts the same way
        h.__enter__()
    try:
        before = {p: sorted(os.listdir(p)) for p in (world["run"], world["tmp"], world["locked"])}
        got, out, err = _call(argv, capsys)
    finally:
        for h in held:
            h.__exit__(None, None, None)
    assert "Traceback" not in out + err
    assert got == status, (argv, got, err)
    first = err.splitlines()[-1] if not err.startswith(PREFIX) else err.splitlines()[0]
    assert first.startswith(PREFIX), err
    assert expected in err, (argv, err)
    assert "internal error" not in err
    assert not list(tmp_path.iterdir()), "a refused command wrote into the current folder"
    assert {p: sorted(os.listdir(p)) for p in before} == before, "a refused command wrote files"
    for k in ("g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "tpu", "gpu", "nowhere"):
        assert not Path(world["tmp"], k).exists(), f"{k} was made by a refused command"


def test_a_half_made_folder_is_restarted_saying_so(world, capsys, tmp_path):
    """A run whose setup failed after its manifest was written (no round completed) is started
    afresh by the same command, which says so; its result is a fresh run's."""
    half = tmp_path / "half"
    half.mkdir()
    manifest = json.loads(Path(world["run"], "manifest.json").read_text())
    (half / "manifest.json").write_text(json.dumps(manifest))
    (half / "samples.jsonl").write_text('{"step": 5}\n')  # left by a kill before its checkpoint
    status, _, err = _call(["run", world["small"], "--out", str(half), "--quiet", "--no-figures"],
                           capsys)
    assert status == 0, err
    assert HALF in err and "starting it afresh" in err
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_parquet(half / "metrics.parquet"),
                                  pd.read_parquet(Path(world["run"], "metrics.parquet")))
    fresh, left = Path(world["run"], "samples.jsonl"), half / "samples.jsonl"
    assert ((left.read_text() if left.exists() else None)  # the leftover line is gone
            == (fresh.read_text() if fresh.exists() else None))
    # a folder with a completed checkpoint is not half-made: refused as before
    status, _, err = _call(["run", world["small"], "--out", str(half), "--quiet"], capsys)
    assert status == 2 and "already holds a run" in err


def test_a_read_only_out_is_refused(world, capsys, monkeypatch, tmp_path):
    """A folder this process may not write into (faked: the tests may run as root, who may)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(lock_module.os, "access",
                        lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    for argv in (["run", world["small"], "--out", str(ro), "--quiet"],
                 ["compare", world["small"], "--strategies", "a=truthful", "--out", str(ro)]):
        status, _, err = _call(argv, capsys)
        assert status == 2 and "not writable" in err and str(ro) in err, err
    assert not list(ro.iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_a_really_read_only_out_is_refused(world, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    status, _, err = _call(["run", world["small"], "--out", str(ro), "--quiet"], capsys)
    assert status == 2 and "not writable" in err, err


def test_the_lock_without_fcntl(tmp_path, monkeypatch):
    """The fallback where fcntl is missing: a lock file made with O_EXCL holding the pid; a lock
    left by a process that no longer runs is taken over, a live one refuses."""
    from genmarket.market.running.folder import RunFolderError

    monkeypatch.setattr(lock_module, "fcntl", None)
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderError, match=BUSY), folder_lock(tmp_path):
            pytest.fail("a second lock was granted")
    assert not (tmp_path / LOCK).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK).write_text(dead + "\n")  # a process that has exited
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())


def test_a_second_process_is_refused_by_the_lock(world, tmp_path, capsys):
    """Two real processes on one run folder: the command is refused while another process holds
    the folder, naming the folder and that process; once the holder is gone (killed: the OS
    drops its lock) the same command runs."""
    out = tmp_path / "shared"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\n"
         "from genmarket.market.running.lock import folder_lock\n"
         f"with folder_lock({str(out)!r}):\n"
         "    print('held', flush=True)\n    sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cmd = ["run", world["small"], "--out", str(out), "--quiet", "--no-figures"]
        second = subprocess.run([sys.executable, "-m", "genmarket.market.cli", *cmd],
                                capture_output=True, text=True)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith(PREFIX) and "Traceback" not in second.stderr
        assert f"{out} is in use by {BUSY} (pid {holder.pid})" in second.stderr
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.communicate()
    assert _call(cmd, capsys)[0] == 0
    assert (out / "summary.json").exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGALRM is POSIX")
@pytest.mark.parametrize("delay", [0.01, 0.3])
def test_ctrl_c_while_starting_is_one_line(world, delay, tmp_path):
    """Ctrl-C while the command imports its modules (torch, pandas: seconds of the command's
    start) or runs (100,000 rounds: it cannot finish first): exit 130 and one line. The SIGINT
    is raised by a timer in the process, started once `genmarket.market.cli` is imported (the
    entry point's own import, a tenth of a second, and Python's start come before any handler
    can run), so it lands wherever the command then is."""
    argv = ["run", world["small"], "--steps", "100000", "--quiet", "--out", str(tmp_path / "r")]
    code = ("import signal, sys\n"
            "from genmarket.market.cli import main\n"
            "signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(signal.SIGINT))\n"
            f"signal.setitimer(signal.ITIMER_REAL, {delay})\n"
            f"sys.exit(main({argv!r}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 130, res.stderr
    assert res.stderr.startswith(f"{PREFIX}interrupted") and res.stderr.count("\n") == 1, \
        res.stderr


def test_ctrl_c_is_one_line_at_any_point_in_process(world, capsys, monkeypatch):
    """Ctrl-C inside the scenario check and inside the report: 130, one line."""
    from genmarket.market.reports import report

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_run", interrupt)
    assert _call(["report", world["run"]], capsys)[::2] == (130, f"{PREFIX}interrupted\n")
    monkeypatch.setattr("genmarket.market.scenario.load_scenario", interrupt)
    assert _call(["validate", world["small"]], capsys)[::2] == (130, f"{PREFIX}interrupted\n")



def test_a_read_only_file_system_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """Any OSError making the lock file (EROFS on --resume, where the writability check is
    skipped) is refused in one line naming the folder, not a traceback."""
    import errno

    from genmarket.market.running.folder import RunFolderError

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lock_module.os, "open", read_only)
    with pytest.raises(RunFolderError, match="not writable .*Read-only file system"):
        lock_module._open(tmp_path / lock_module.LOCK, os.O_RDWR | os.O_CREAT)
