"""The Python API for notebooks: `genmarket.run(...)` runs a scenario the way the CLI does and
returns its tables as pandas DataFrames."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genmarket.market.engine.market import as_scenario
from genmarket.market.running.runner import keep_freed_memory, run_scenario
from genmarket.market.scenario import Scenario

__all__ = ["Result", "configure", "run"]


def configure(threads: int = 1) -> None:
    """The process settings every genmarket run uses, from the CLI or from Python: `threads`
    CPU threads for torch (1 by default: a round is many small batched ops, which run fastest
    single-threaded) and glibc keeping freed memory (see `keep_freed_memory`)."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads = {threads!r}: must be an integer >= 1")
    torch.set_num_threads(threads)
    keep_freed_memory()


@dataclass
class Result:
    """What `run` returns. metrics — one row per collected round and replica (metrics.parquet);
    agents — one row per collected round, replica and advertiser (None when not kept);
    summary — summary.json (per variant for a scenario with variants); folder — the run folder
    (None when it was a temporary one, already removed); seconds — wall time of the rounds."""

    metrics: pd.DataFrame | None
    agents: pd.DataFrame | None
    summary: dict[str, Any]
    folder: Path | None
    seconds: float


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / name
    return pd.read_parquet(path) if path.exists() else None


def run(scenario: Scenario | dict | str | Path, out: str | Path | None = None, *,
        threads: int = 1, figures: bool = False, progress: bool = False,
        **overrides: Any) -> Result:
    """Run `scenario` (a Scenario, a mapping or a TOML path) with keyword `overrides` merged in
    (`steps=200`, `seed=3`, `mechanism__reserve=0.1`) and return its tables.

    out — the run folder to write (kept); None runs in a temporary folder that is removed once
    the tables are read. threads — torch CPU threads, as `genmarket run --threads`. figures,
    progress — draw the seaborn figures, show a progress bar. Raises ScenarioError for a bad
    scenario. For a scenario with variants, `metrics` and `agents` stack the variants' tables
    with a `variant` column.
    """
    sc = as_scenario(scenario, overrides)
    configure(threads)
    tmp = None if out is not None else Path(tempfile.mkdtemp(prefix="genmarket-"))
    folder = Path(out) if out is not None else tmp / sc.name
    try:
        res = run_scenario(sc, folder, figures=figures, progress=progress)
        subs = [(name, folder / name) for name, _ in sc.variant_scenarios()] or [(None, folder)]
        tables = {}
        for table in ("metrics.parquet", "agents.parquet"):
            parts = [(n, _read(p, table)) for n, p in subs]
            parts = [df.assign(variant=n) if n is not None else df for n, df in parts if df is not None]
            tables[table] = pd.concat(parts, ignore_index=True) if parts else None
        return Result(tables["metrics.parquet"], tables["agents.parquet"], res.summary,
                      None if tmp is not None else folder, res.seconds)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
