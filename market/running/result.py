"""What a run returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """folder — the run folder; steps — rounds (or experiment cells) completed; resumed_from —
    0 for a fresh run; seconds — wall time of the rounds themselves (checkpoints included);
    summary — summary.json's content (None when stopped early)."""

    folder: Path
    steps: int
    resumed_from: int
    seconds: float
    summary: dict[str, Any] | None
