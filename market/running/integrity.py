"""Checkpoints that cannot resume wrong: what `state.json` records of the files a resume reads,
and the checks that refuse a run folder whose files changed since.

`state.json` holds the step, the tensors' file name (always `state-<step>.safetensors`, so a
path written into it can never leave the folder; the file's own metadata repeats the step), the
SHA-256 of that file and of every metric
part written so far (`parts`: name -> hash) or, once the run has finished and its parts were
merged, of `metrics.parquet` and `agents.parquet` (`final`). A folder written before these
fields existed resumes unchecked, as it did.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors import safe_open

__all__ = ["IntegrityError", "check_state", "sha256", "tensors_name"]


class IntegrityError(ValueError):
    """A checkpoint that does not match its files: the message names the file and what to do."""


def sha256(path: Path) -> str:
    """The SHA-256 hex digest of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_name(step: int) -> str:
    """The one file name a checkpoint of `step` may have."""
    return f"state-{step:010d}.safetensors"


def _refuse(folder: Path, what: str) -> IntegrityError:
    return IntegrityError(f"{folder}: {what}; the checkpoint cannot resume this folder exactly "
                          "(start the run afresh in another --out, or restore the file)")


def check_state(folder: Path, checkpoints: Path, parts: Path, state: dict) -> int:
    """Check `state` (state.json, parsed) against the run folder's files and return its step.
    Raises IntegrityError naming the first file that is missing, renamed or changed."""
    step = state.get("steps")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _refuse(folder, f"checkpoint/state.json: steps = {step!r} is not a round number")
    if state.get("tensors") != tensors_name(step):
        raise _refuse(folder, f"checkpoint/state.json: tensors = {state.get('tensors')!r}, "
                              f"expected {tensors_name(step)!r} for step {step}")
    blob = checkpoints / tensors_name(step)
    if not blob.is_file():
        raise _refuse(folder, f"checkpoint/{blob.name} is missing")
    if "sha256" in state and sha256(blob) != state["sha256"]:
        raise _refuse(folder, f"checkpoint/{blob.name} changed since it was written")
    try:
        with safe_open(str(blob), "pt") as fh:
            written = (fh.metadata() or {}).get("steps")
    except Exception as exc:  # noqa: BLE001 - a damaged file, whatever safetensors says
        raise _refuse(folder, f"checkpoint/{blob.name} cannot be read ({exc})") from None
    if written is not None and written != str(step):
        raise _refuse(folder, f"checkpoint/{blob.name} was written at step {written}, but "
                              f"state.json says step {step}")
    for name, digest in (state.get("parts") or {}).items():
        path = parts / name
        if path.name != name or not path.is_file():
            raise _refuse(folder, f"parts/{name} is missing")
        if sha256(path) != digest:
            raise _refuse(folder, f"parts/{name} changed since it was written")
    if state.get("parts") is not None and parts.exists():
        for path in parts.glob("*.parquet"):
            if path.name not in state["parts"] and int(path.stem.split("-")[-1]) <= step:
                raise _refuse(folder, f"parts/{path.name} was not written by this run")
    for name, digest in (state.get("final") or {}).items():
        path = folder / name
        if path.name != name or not path.is_file():
            raise _refuse(folder, f"{name} is missing")
        if sha256(path) != digest:
            raise _refuse(folder, f"{name} changed since the run finished")
    return step
