"""Run folders: manifest, metric parts, checkpoints, final Parquet tables and the summary.

Layout of a run folder:

    manifest.json          validated scenario, seed, device, package versions, git commit
    parts/                 metric rows flushed at each checkpoint (metrics-*.parquet, agents-*.parquet);
                           only while the run is unfinished: removed once merged into the files below
    checkpoint/            state.json + state-<step>.safetensors: everything needed to resume
    metrics.parquet        one row per collected step and replica (written when the run ends)
    agents.parquet         one row per collected step, replica and advertiser
    samples.jsonl          readable sample auctions of replica 0 (one JSON object a line);
                           samples/ the files they attach, if any
    summary.json           means over the last 10% of steps, overall and per group
    figures/               seaborn PNGs

Rows reach `parts/` (and samples `samples.jsonl`) only together with the checkpoint that follows
them, so an interrupted run resumed from its checkpoint neither loses nor repeats a step. A
finished run extended with `--resume` and a larger `steps` starts from its final checkpoint and
its final tables, which become its first part again. Every table starts with `step`, `replica`
(and `agent`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import load_file, save_file

from genmarket.market.engine.precision import choose_precision
from genmarket.market.running.integrity import IntegrityError, check_state, sha256, tensors_name

MANIFEST, SUMMARY, STATE = "manifest.json", "summary.json", "state.json"
SAMPLES = "samples.jsonl"
PACKAGES = ("genmarket", "mesa", "torch", "numpy", "pandas", "pyarrow", "pydantic", "scipy", "seaborn")


class RunFolderError(RuntimeError):
    """A run folder that cannot be created, resumed or read: the message says which and why."""


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
        self._hashes: dict[str, str] = {}  # part file -> SHA-256, as state.json records them
        self.figures = self.path / "figures"

    # ------------------------------------------------------------------ manifest

    def create(self, scenario, device: str, command: list[str] | None = None) -> None:
        """Write the manifest of a new run. A folder holding a run that completed a checkpoint
        is refused; one whose run never did (its setup failed, or it was stopped before its
        first checkpoint) is cleared and started afresh, saying so on stderr."""
        if (self.path / MANIFEST).exists():
            self.manifest()  # a damaged or foreign manifest.json is refused, not overwritten
            if self.completed():
                raise RunFolderError(f"{self.path} already holds a run: pass --resume to "
                                     "continue it, or another --out")
            print(f"genmarket: {self.path} held a run that never reached its first checkpoint: "
                  "starting it afresh", file=sys.stderr, flush=True)
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / MANIFEST, {
            "scenario": scenario.model_dump(mode="json"),
            "seed": scenario.seed,
            "device": device,
            "precision": choose_precision(scenario).record(),
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

    def record_compile(self, record: dict[str, Any], resumed: bool) -> None:
        """Note which path the rounds took (`CompilePath.record`: compiled or eager, why, the
        compile time): under `compile`, or under the last resume for a resumed part."""
        manifest = self.manifest()
        if resumed and manifest.get("resumes"):
            manifest["resumes"][-1]["compile"] = record
        else:
            manifest["compile"] = record
        write_json(self.path / MANIFEST, manifest)

    def manifest(self) -> dict[str, Any]:
        """manifest.json. Raises RunFolderError, naming the file: missing, not JSON (damaged,
        cut short) or not a run manifest (no `scenario` object: another program's file)."""
        path = self.path / MANIFEST
        if not path.exists():
            raise RunFolderError(f"{self.path} is not a run folder (no {MANIFEST})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: not valid JSON ({exc}): the file is damaged; start "
                                 "the run again with another --out") from None
        if not isinstance(data, dict) or not isinstance(data.get("scenario"), dict):
            raise RunFolderError(f"{path}: not a run manifest (no scenario object in it): not "
                                 "written by genmarket run; give another --out")
        return data

    def completed(self) -> bool:
        """Whether the run (or a run in a sub-folder: variants) completed a checkpoint or a
        cell: any checkpoint state, metric part or table, or summary."""
        done = {STATE, SUMMARY, "comparison.json"}
        return any(p.name in done or p.suffix == ".parquet" for p in self.path.rglob("*"))

    def clear(self) -> None:
        """Remove what a run that completed nothing wrote (see `create`): its manifest,
        checkpoint, parts and samples, and its variants' folders likewise."""
        for sub in self.path.iterdir():
            if sub.is_dir() and (sub / MANIFEST).exists():
                RunFolder(sub).clear()
                with contextlib.suppress(OSError):  # left as it is when not empty
                    sub.rmdir()
        for name in ("checkpoint", "parts", "parts.merged", "samples"):
            shutil.rmtree(self.path / name, ignore_errors=True)
        for name in (SAMPLES, MANIFEST):
            (self.path / name).unlink(missing_ok=True)

    def check_resumable(self, scenario) -> None:
        """Refuse to resume with a scenario that differs from the run's (other than `steps` and
        the compile settings)."""
        old = dict(self.manifest()["scenario"])
        new = scenario.model_dump(mode="json")
        # folders written before the families held every kind's mechanism fields: compare the
        # fields of this scenario's family only
        fields = type(scenario.mechanism).model_fields
        if isinstance(old.get("mechanism"), dict):
            old["mechanism"] = {k: v for k, v in old["mechanism"].items() if k in fields}
        # folders written before a [metrics] key existed used its default
        if isinstance(old.get("metrics"), dict) and isinstance(new.get("metrics"), dict):
            defaults = type(scenario.metrics)().model_dump(mode="json")
            old["metrics"] = {**{k: v for k, v in defaults.items() if k not in old["metrics"]},
                              **old["metrics"]}
        # compiled or eager rounds give the same numbers bit for bit: a resume may switch
        for key in ("steps", "compile", "compile_rounds"):
            old.pop(key, None)
            new.pop(key, None)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            raise RunFolderError(
                f"cannot resume {self.path}: the scenario differs in {', '.join(diff)}"
            )

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, model, frames: tuple[pd.DataFrame, pd.DataFrame | None],
                        samples: list[dict] | None = None) -> None:
        """Flush the rows (and readable samples) collected since the last checkpoint, then save
        the model state."""
        step = int(model.steps)
        metrics, agents = frames
        if samples:
            self.append_samples(samples)
        self.parts.mkdir(parents=True, exist_ok=True)
        for name, df in (("metrics", metrics), ("agents", agents)):
            if df is not None and len(df):
                first = int(df["step"].min())
                write_parquet(df, self.parts / f"{name}-{first:010d}-{step:010d}.parquet")
        self.checkpoints.mkdir(exist_ok=True)
        tensors = {k: v.cpu() for k, v in model.state_dict().items()}
        blob = tensors_name(step)
        save_file(tensors, str(self.checkpoints / blob), metadata={"steps": str(step)})
        # every part up to this step, each hashed once (when first seen), for `check_state`
        hashes = {p.name: self._hashes.get(p.name) or sha256(p)
                  for p in sorted(self.parts.glob("*.parquet"))}
        self._hashes = hashes
        write_json(self.checkpoints / STATE, {"steps": step, "tensors": blob,
                                               "sha256": sha256(self.checkpoints / blob),
                                               "parts": hashes})
        for old in self.checkpoints.glob("state-*.safetensors"):
            if old.name != blob:
                old.unlink()

    def load_checkpoint(self, model) -> int:
        """Restore the model from the checkpoint; drop parts written after it. Returns the step."""
        state_path = self.checkpoints / STATE
        if not state_path.exists():
            self._drop_parts_after(0)
            self.drop_samples_after(0)
            return 0
        try:
            state = json.loads(state_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{state_path}: not a checkpoint state ({exc})") from None
        if not isinstance(state, dict):
            raise RunFolderError(f"{state_path}: not a checkpoint state")
        try:
            step = check_state(self.path, self.checkpoints, self.parts, state)
        except IntegrityError as exc:
            raise RunFolderError(str(exc)) from None
        try:
            model.load_state_dict(load_file(str(self.checkpoints / tensors_name(step))), step)
        except (KeyError, ValueError, RuntimeError) as exc:  # another scenario's or family's state
            raise RunFolderError(f"{self.checkpoints / tensors_name(step)}: not a checkpoint of "
                                 f"this scenario's market ({type(exc).__name__}: {exc})") from None
        self._hashes = dict(state.get("parts") or {})
        self._parts_from_final(step)
        self._drop_parts_after(step)
        self.drop_samples_after(step)
        return step

    def _parts_from_final(self, step: int) -> None:
        """A finished run (its parts merged and removed) being resumed: its final tables, up to
        the checkpoint's `step`, become its first part again."""
        if not (self.path / "metrics.parquet").exists() or any(self.parts.glob("metrics-*.parquet")):
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        for name in ("agents", "metrics"):  # metrics last: its part marks the copy done
            final = self.path / f"{name}.parquet"
            if not final.exists():
                continue
            df = pd.read_parquet(final)
            df = df[df["step"] <= step]
            if len(df):
                first = int(df["step"].min())
                part = self.parts / f"{name}-{first:010d}-{step:010d}.parquet"
                write_parquet(df, part)
                self._hashes[part.name] = sha256(part)

    def _drop_parts_after(self, step: int) -> None:
        for part in self.parts.glob("*.parquet"):
            if int(part.stem.split("-")[-1]) > step:
                part.unlink()
                self._hashes.pop(part.name, None)

    # ------------------------------------------------------------------ samples

    def append_samples(self, records: list[dict], name: str = SAMPLES) -> None:
        """Append readable sample records to `name` (one JSON object a line), writing their
        `attachments` to samples/ and listing them under `files` (relative paths)."""
        lines = []
        for rec in records:
            rec = dict(rec)
            attachments = rec.pop("attachments", None) or {}
            if attachments:
                (self.path / "samples").mkdir(exist_ok=True)
                stem = f"{rec.get('step', 0):010d}-{rec.get('replica', 0)}-{rec.get('auction', 0)}"
                rec["files"] = []
                for file, data in attachments.items():
                    rel = f"samples/{stem}-{file}"
                    (self.path / rel).write_bytes(data)
                    rec["files"].append(rel)
            lines.append(json.dumps(rec, default=_jsonable, ensure_ascii=False) + "\n")
        with open(self.path / name, "a", encoding="utf-8") as fh:
            fh.writelines(lines)

    def drop_samples_after(self, step: int) -> None:
        """Keep only the samples (and their files) of steps <= `step`: those written after the
        checkpoint a resumed run starts from are written again as it replays them."""
        path = self.path / SAMPLES
        if path.exists():
            keep = [rec for rec in read_samples(path) if rec.get("step", 0) <= step]
            tmp = path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep),
                           encoding="utf-8")
            os.replace(tmp, path)
        for file in (self.path / "samples").glob("*"):
            if int(file.name.split("-")[0]) > step:
                file.unlink()

    # ------------------------------------------------------------------ results

    def read_parts(self, name: str) -> pd.DataFrame | None:
        files = sorted(self.parts.glob(f"{name}-*.parquet"))
        if not files:
            return None
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        keys = ["step", "replica"] + (["agent"] if name == "agents" else [])
        df = df[keys + [c for c in df.columns if c not in keys]]  # parts of older runs: step last
        return df.sort_values(keys, kind="stable").reset_index(drop=True)

    def finalize(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Write metrics.parquet and agents.parquet from the parts, then remove the parts (a
        resume reads the final tables back: `load_checkpoint`). Returns (metrics, agents)."""
        metrics = self.read_parts("metrics")
        if metrics is None:
            raise RunFolderError(f"{self.path}: no metric rows were collected")
        agents = self.read_parts("agents")
        write_parquet(metrics, self.path / "metrics.parquet")
        if agents is not None:
            write_parquet(agents, self.path / "agents.parquet")
        state_path = self.checkpoints / STATE
        if state_path.exists():  # the checkpoint now vouches for the final tables, not the parts
            state = json.loads(state_path.read_text())
            state["final"] = {name: sha256(self.path / name)
                              for name in ("metrics.parquet", "agents.parquet")
                              if (self.path / name).exists()}
            state["parts"] = {}
            write_json(state_path, state)
            self._hashes = {}
        # renamed first (atomic), so that a kill while deleting leaves no half set of parts
        merged = self.path / "parts.merged"
        shutil.rmtree(merged, ignore_errors=True)
        if self.parts.exists():
            os.replace(self.parts, merged)
            shutil.rmtree(merged)
        return metrics, agents


def read_samples(path: Path) -> list[dict]:
    """The records of a samples.jsonl file, in order; a last line cut short by a kill is left
    out."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    os.replace(tmp, path)


__all__ = ["SAMPLES", "RunFolder", "RunFolderError", "git_commit", "package_versions",
           "read_samples", "write_json", "write_parquet"]
