"""The report's "Samples" section: a few of the auctions a folder's samples.jsonl keeps (what
was asked, what was returned, who took part and what each got and paid), rendered from the
records alone, whatever the family: text fields are quoted, lists of records become tables,
attached files are listed. A run folder's samples are spread over the run (its first, middle
and last collected rounds); an experiment's over its cells; a variants folder shows each
variant's."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genmarket.market.reports.document import Doc, read_json
from genmarket.market.reports.specs import family_for
from genmarket.market.running.folder import SAMPLES, read_samples

__all__ = ["SHOWN", "chosen", "samples_section"]

SHOWN = 3  # samples shown per folder
ID_KEYS = 8  # at most this many leading short fields name a sample in its heading


def chosen(records: list[dict], k: int = SHOWN) -> list[dict]:
    """At most k records, evenly spread over the file (its first and last included)."""
    if len(records) <= k:
        return list(records)
    return [records[i] for i in np.linspace(0, len(records) - 1, k).round().astype(int)]


def samples_section(doc: Doc, folder: Path, level: int) -> None:
    """Add a "Samples" section for `folder` (a run or experiment folder with samples.jsonl, or a
    variants folder whose variants have one); nothing when there are none."""
    folder = Path(folder)
    if (folder / SAMPLES).exists():
        _one(doc, folder, level, "Samples")
        return
    if not (folder / "comparison.json").exists():
        return
    names = [n for n in read_json(folder / "comparison.json") if (folder / n / SAMPLES).exists()]
    if names:
        doc.heading("Samples", level)
        for n in names:
            _one(doc, folder / n, level + 1, f"Samples of variant {n}")


def _one(doc: Doc, folder: Path, level: int, title: str) -> None:
    records = read_samples(folder / SAMPLES)
    if not records:
        return
    money = ""
    if (folder / "manifest.json").exists():
        with contextlib.suppress(KeyError, ValueError):  # an unknown family: no unit named
            money = f"; money in {family_for(read_json(folder / 'manifest.json')).money}"
    shown = chosen(records)
    doc.heading(title, level)
    doc.text(f"{len(shown)} of the {len(records)} sample auctions in {SAMPLES}, spread over it "
             f"(replica 0{money}).")
    for rec in shown:
        _record(doc, rec, level + 1)


def _short(v: Any) -> bool:
    """Whether a field names the sample: a whole number, or one word."""
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, str) and len(v) <= 24 and " " not in v)


def _record(doc: Doc, rec: dict, level: int) -> None:
    """One sample: its leading identifying fields as the heading, then each other field: texts
    quoted, numbers, lists of records as tables, file names."""
    ids = []
    for k, v in rec.items():  # the leading short fields (step, replica, auction, ...)
        if not _short(v) or len(ids) == ID_KEYS:
            break
        ids.append(k)
    doc.heading(", ".join(f"{k} {_fmt(rec[k])}" for k in ids), level)
    for key, value in rec.items():
        if key in ids:
            continue
        if isinstance(value, str):  # texts quoted, single words as they are
            doc.text(f"{key}: “{value}”" if " " in value.strip() else f"{key}: {value}")
        elif isinstance(value, bool | int | float):
            doc.text(f"{key}: {_fmt(value)}")
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            doc.text(f"{key}:")
            doc.table(pd.DataFrame([{k: _fmt(v) for k, v in x.items()} for x in value]))
        elif key == "files" and value:
            doc.text("files: " + ", ".join(str(x) for x in value))
        elif isinstance(value, list) and value and all(isinstance(x, str) for x in value):
            doc.text(f"{key}: {', '.join(value)}")
        # lists of numbers (token ids) and empty lists are not readable: left out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
