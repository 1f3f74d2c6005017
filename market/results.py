"""Run folders: manifest, metric parts, checkpoints, final Parquet tables and the summary.

Layout of a run folder:

    manifest.json          validated scenario, seed, device, package versions, git commit
    parts/                 metric rows flushed at each checkpoint (metrics-*.parquet, agents-*.parquet)
    checkpoint/            state.json + state-<step>.safetensors: everything needed to resume
    metrics.parquet        one row per collected step and replica (written when the run ends)
    agents.parquet         one row per collected step, replica and advertiser
    summary.json           means over the last 10% of steps, overall and per group
    figures/               seaborn PNGs

Rows reach `parts/` only together with the checkpoint that follows them, so an interrupted run
resumed from its checkpoint neither loses nor repeats a step.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import load_file, save_file

MANIFEST, SUMMARY, STATE = "manifest.json", "summary.json", "state.json"
PACKAGES = ("genmarket", "mesa", "torch", "numpy", "pandas", "pyarrow", "pydantic", "scipy", "seaborn")


class RunFolderError(RuntimeError):
    pass


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    """The commit of the genmarket source tree, or None outside a git checkout."""
    here = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.parts = self.path / "parts"
        self.checkpoints = self.path / "checkpoint"
        self.figures = self.path / "figures"

    # ------------------------------------------------------------------ manifest

    def create(self, scenario, device: str, command: list[str] | None = None) -> None:
        if (self.path / MANIFEST).exists():
            raise RunFolderError(
                f"{self.path} already holds a run: pass --resume to continue it, or another --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(exist_ok=True)
        write_json(self.path / MANIFEST, {
            "scenario": scenario.model_dump(mode="json"),
            "seed": scenario.seed,
            "device": device,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command or [],
        })

    def record_resume(self, scenario, from_step: int, command: list[str] | None = None) -> None:
        """Note a resume in the manifest (and a new `steps` when the run is being extended)."""
        manifest = self.manifest()
        manifest["scenario"]["steps"] = scenario.steps
        manifest.setdefault("resumes", []).append({
            "from_step": from_step,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command or [],
        })
        write_json(self.path / MANIFEST, manifest)

    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            raise RunFolderError(f"{self.path} is not a run folder (no {MANIFEST})")
        return json.loads(path.read_text())

    def check_resumable(self, scenario) -> None:
        """Refuse to resume with a scenario that differs from the run's (other than `steps`)."""
        old = dict(self.manifest()["scenario"])
        new = scenario.model_dump(mode="json")
        old.pop("steps", None)
        new.pop("steps", None)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            raise RunFolderError(
                f"cannot resume {self.path}: the scenario differs in {', '.join(diff)}"
            )

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, model, frames: tuple[pd.DataFrame, pd.DataFrame | None]) -> None:
        """Flush the rows collected since the last checkpoint, then save the model state."""
        step = int(model.steps)
        metrics, agents = frames
        self.parts.mkdir(parents=True, exist_ok=True)
        for name, df in (("metrics", metrics), ("agents", agents)):
            if df is not None and len(df):
                first = int(df["step"].min())
                _write_parquet(df, self.parts / f"{name}-{first:010d}-{step:010d}.parquet")
        self.checkpoints.mkdir(exist_ok=True)
        tensors = {k: v.cpu() for k, v in model.state_dict().items()}
        blob = f"state-{step:010d}.safetensors"
        save_file(tensors, str(self.checkpoints / blob))
        write_json(self.checkpoints / STATE, {"steps": step, "tensors": blob})
        for old in self.checkpoints.glob("state-*.safetensors"):
            if old.name != blob:
                old.unlink()

    def load_checkpoint(self, model) -> int:
        """Restore the model from the checkpoint; drop parts written after it. Returns the step."""
        state_path = self.checkpoints / STATE
        if not state_path.exists():
            self._drop_parts_after(0)
            return 0
        state = json.loads(state_path.read_text())
        step = int(state["steps"])
        model.load_state_dict(load_file(str(self.checkpoints / state["tensors"])), step)
        self._drop_parts_after(step)
        return step

    def _drop_parts_after(self, step: int) -> None:
        for part in self.parts.glob("*.parquet"):
            if int(part.stem.split("-")[-1]) > step:
                part.unlink()

    # ------------------------------------------------------------------ results

    def read_parts(self, name: str) -> pd.DataFrame | None:
        files = sorted(self.parts.glob(f"{name}-*.parquet"))
        if not files:
            return None
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        keys = ["step", "replica"] + (["agent"] if name == "agents" else [])
        return df.sort_values(keys, kind="stable").reset_index(drop=True)

    def finalize(self, steps: int, unraveling_threshold: float = 0.5
                 ) -> tuple[dict[str, Any], pd.DataFrame]:
        """Write metrics.parquet, agents.parquet and summary.json from the parts.
        Returns (summary, metrics table)."""
        metrics = self.read_parts("metrics")
        if metrics is None:
            raise RunFolderError(f"{self.path}: no metric rows were collected")
        _write_parquet(metrics, self.path / "metrics.parquet")
        agents = self.read_parts("agents")
        if agents is not None:
            _write_parquet(agents, self.path / "agents.parquet")
        summary = summarize(metrics, agents, steps, unraveling_threshold)
        write_json(self.path / SUMMARY, summary)
        return summary, metrics


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    os.replace(tmp, path)


def collector_frames(model) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Tidy tables from the model's DataCollector (per-replica arrays -> one row per replica)."""
    dc = model.datacollector
    R = model.R
    rows = [m for m in dc.model_vars.get("metrics", []) if m is not None]
    if rows:
        metrics = pd.DataFrame({
            k: np.concatenate([r[k] for r in rows]) for k in rows[0]
        })
        metrics.insert(1, "replica", np.tile(np.arange(R, dtype=np.int64), len(rows)))
    else:
        metrics = pd.DataFrame()
    agents = None
    if model.scenario.metrics.agents:
        table = dc.get_agent_vars_dataframe()  # index (Step, AgentID), column "record"
        table = table[table["record"].notna()] if len(table) else table
        if len(table):
            group_of = {a.unique_id: a.group_name for a in model.advertisers}
            steps = table.index.get_level_values("Step").to_numpy(np.int64)
            ids = table.index.get_level_values("AgentID").to_numpy(np.int64)
            records = table["record"].tolist()
            agents = pd.DataFrame({
                "step": np.repeat(steps, R),
                "replica": np.tile(np.arange(R, dtype=np.int64), len(records)),
                "agent": np.repeat(ids, R),
                "group": np.repeat(np.array([group_of[i] for i in ids]), R),
                **{c: np.concatenate([r[c] for r in records]) for c in records[0]},
            })
    return metrics, agents


def summary_window(rows: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The rows (metric or agent rows, with a `step` column) that summaries average: the last
    10% of `steps` rounds, or the last collected step when none falls there."""
    window = rows[rows["step"] > steps - max(1, steps // 10)]
    return window if len(window) else rows[rows["step"] == rows["step"].max()]


def summarize(metrics: pd.DataFrame, agents: pd.DataFrame | None, steps: int,
              unraveling_threshold: float = 0.5) -> dict[str, Any]:
    """Means over the last 10% of steps (at least the last collected row), overall and per group.

    For each metric also the 95% interval half-width across replicas (0 with one replica). Markets
    that track relevant advertisers (MOSAIC) also get `unraveling`: the first collected step from
    which on the share of relevant advertisers entering, averaged over replicas, stays below the
    threshold (None if it ends at or above it), and the share of irrelevant ones drawn in over
    the window.
    """
    window = summary_window(metrics, steps)
    cols = [c for c in metrics.columns if c not in ("step", "replica")]
    per_rep = window.groupby("replica")[cols].mean()
    out: dict[str, Any] = {
        "window": [int(window["step"].min()), int(window["step"].max())],
        "replicas": int(metrics["replica"].nunique()),
        "metrics": {c: _num(per_rep[c].mean()) for c in cols},
        "ci95": {c: _num(half_width95(per_rep[c])) for c in cols},
    }
    if agents is not None:
        aw = summary_window(agents, steps)
        acted = "bid" if "bid" in aw else "report"  # classic auctions bid, MOSAIC reports
        aw = aw.assign(ratio=aw[acted] / aw["value"].where(aw["value"] > 0))
        groups = {}
        for name, df in aw.groupby("group", sort=True):
            row = {"entry_rate": _num(df["entered"].mean()),
                   f"mean_{acted}_ratio": _num(df["ratio"].mean())}
            for col in ("utility", "payment", "won", "reward"):
                if col in df:
                    row[col] = _num(df[col].mean())
            groups[str(name)] = row
        out["groups"] = groups
    if "entry_rate_relevant" in metrics:
        share = metrics.groupby("step")["entry_rate_relevant"].mean()
        # unravelled from the first collected step after which the share never comes back up
        above = share[share >= unraveling_threshold]
        later = share.index if above.empty else share.index[share.index > above.index[-1]]
        out["unraveling"] = {
            "threshold": unraveling_threshold,
            "step": int(later[0]) if len(later) else None,
            "relevant_share_final": _num(share.iloc[-1]),
            "irrelevant_share_window": _num(window["entry_rate_irrelevant"].mean()),
        }
    return out


def half_width95(x: pd.Series) -> float:
    """Half-width of the normal-approximation 95% interval of the mean (0 below two values)."""
    x = x.dropna()
    if len(x) < 2:
        return 0.0
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def _num(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)


__all__ = [
    "RunFolder", "RunFolderError", "collector_frames", "summarize", "summary_window", "half_width95",
    "package_versions", "git_commit",
]
