"""Progress bars for the long loops outside a market's rounds: the one-shot experiment's cells
(generator, M) and the candidate replies its backend draws, and `compare`'s profiles. rich
bars on the terminal, or nothing at all (`--quiet`, library use): every method is then a no-op,
so the loops call them unconditionally."""

from __future__ import annotations

from typing import Any

__all__ = ["Bars"]


class Bars:
    """A set of rich progress bars, shown while the `with` block runs (enabled=False: none).

    add(description, total, unit) -> a task id (None when disabled); advance(task, n) adds n
    done; update(task, **fields) changes its description, total or completed count.
    """

    def __init__(self, enabled: bool = True):
        self.progress = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            )

    def __enter__(self) -> Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def add(self, description: str, total: int | None, unit: str, completed: int = 0):
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total, completed=completed, unit=unit)

    def advance(self, task, n: int = 1) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, n)

    def update(self, task, **fields: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **fields)
