"""The benchmark scripts keep running (tiny sizes; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_market_runs(tmp_path):
    out = tmp_path / "section.md"
    res = subprocess.run(
        [sys.executable, "benchmarks/bench_market.py", "--hedge-steps", "3", "--q-steps", "20",
         "--check-rounds", "200", "--no-compiled", "--out", str(out)], cwd=ROOT,
        capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    # the fair table (header, rule, 5 rows; compiled rounds skipped: tests/test_compiled.py),
    # the check (header, rule, 6 rows), the straw men (header, rule, 4 rows)
    assert text.count("\n| ") == 21
    assert "| BS22 second price, 100 sessions (mean of the phases) |" in text
    assert "NumPy loop over rounds" in text
    assert "bidder-auctions/s" in text and "rounds/s" in text


def test_bench_mechanisms_runs():
    res = subprocess.run(
        [sys.executable, "benchmarks/bench_mechanisms.py", "--reps", "2", "--naive-auctions", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("| B=") == 6  # two shapes x three mechanisms


def test_write_section_replaces_only_its_block(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_market import write_section

    path = tmp_path / "RESULTS.md"
    write_section(path, "a", "cpu", "one\n")
    write_section(path, "b", "cpu", "two\n")
    write_section(path, "a", "cpu", "three\n")
    text = path.read_text()
    assert "three" in text and "two" in text and "one" not in text


def test_bench_mosaic_backend_rows():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_mosaic import BACKEND_HEADER, backend_rows

    rows = backend_rows("cpu", reps=1, smollm2=False)
    assert len(rows) == 2 and all(r.count("|") == BACKEND_HEADER[0].count("|") for r in rows)


def test_bench_diffusion_concept_row():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from bench_diffusion import HEADER, NS, WORLD, speed_row

    from genmarket.mechanisms.backends.image import get_backend

    backend = get_backend("concept", WORLD, dtype=torch.float32, steps=2)
    row = speed_row("concept", backend, 2, 2, "cpu", reps=1)
    assert row.count("|") == HEADER[0].count("|") and row.count("images/s, ratio ") == len(NS)


def test_bench_token_runs(tmp_path):
    out = tmp_path / "section.md"
    res = subprocess.run(
        [sys.executable, "benchmarks/bench_token.py", "--small", "--reps", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert text.count("\n| ") == 6  # header, rule and two rules x (synthetic, tiny Llama)
    assert "tokens/s" in text
