"""What `genmarket report` checks before it reads a folder, and how it words a folder it cannot
read: one line naming the folder or file, what is wrong with it and what to do.

A folder that is missing or a file, a run or game that has not finished, a manifest.json that is
missing, damaged or holds no scenario, and a summary.json without the fields every report reads
are refused before anything is drawn. Fields missing deeper in (an older or edited folder) are
worded by `unreadable` from the error the report met.
"""

from __future__ import annotations

from pathlib import Path

from genmarket.market.reports.document import read_json

__all__ = ["check_folder", "unreadable"]

RESULTS = ("summary.json", "comparison.json", "analysis.json", "variants.json")
REDO = "re-run the command that made the folder"


def check_folder(folder: Path) -> None:
    """Raise ValueError (one line) when `folder` cannot be reported: see the module."""
    if not folder.exists():
        raise ValueError(f"{folder}: no such folder: give a folder written by genmarket run or "
                         "compare")
    if not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder: give a folder written by genmarket "
                         "run or compare")
    has = {p.name for p in folder.iterdir()}
    for name in sorted(set(RESULTS) & has):  # each one JSON object, or named as damaged
        read_json(folder / name)
    if "manifest.json" in has:
        manifest = read_json(folder / "manifest.json")
        if not isinstance(manifest.get("scenario"), dict):
            raise ValueError(f"{folder / 'manifest.json'}: no 'scenario' object in it (written "
                             f"by another genmarket version, or edited): {REDO}")
        if "roles" in manifest and not {"analysis.json", "variants.json"} & has:
            raise ValueError(f"{folder}: the game has not finished (no analysis.json): run the "
                             "same genmarket compare command again to finish it, then report it")
        if "roles" not in manifest and not {"summary.json", "comparison.json"} & has:
            raise ValueError(f"{folder}: the run has not finished (no summary.json): finish it "
                             f"with `genmarket run SCENARIO --out {folder} --resume`, then "
                             "report it")
    elif {"summary.json", "comparison.json", "analysis.json"} & has:
        raise ValueError(f"{folder / 'manifest.json'}: missing (the report reads the scenario "
                         f"from it): {REDO}")
    if "summary.json" in has:
        summary = read_json(folder / "summary.json")
        for key, kind in (("metrics", dict), ("window", list), ("replicas", int)):
            if key in summary and not isinstance(summary[key], kind):
                raise ValueError(f"{folder / 'summary.json'}: {key} = {summary[key]!r}: must be "
                                 f"a JSON {'object' if kind is dict else kind.__name__}; {REDO}")


def unreadable(folder: Path, exc: Exception) -> str:
    """The one line for a folder whose files lack a field the report reads (`exc`: the KeyError,
    TypeError, ... that reading it raised)."""
    return (f"{folder}: its files lack what this genmarket version reads ({type(exc).__name__}: "
            f"{exc}): written by another genmarket version, or edited; {REDO}")
