"""What a market collects: Mesa's DataCollector for Mesa's tools, exact per-replica rows for the
run folder.

`MarketCollector` is a `mesa.DataCollector` with one column per metric (the mean over replicas)
and one agent column per ledger field. Its rows are indexed by step, as `mesa.batch_run` reads
them: a row is collected in `__init__` (step 0, all NaN: no auction yet) and one per step after
it, NaN on the steps between collection steps (a list append per metric, not a collection). The run folder needs every replica, so the market also keeps the per-replica arrays of
each collection (`rows`), from which `frames` builds metrics.parquet and agents.parquet.
"""

from __future__ import annotations

import math
from functools import partial

import mesa
import numpy as np
import pandas as pd

__all__ = ["MarketCollector", "frames"]


def _model_value(name: str, model) -> float:
    return model.collected_means.get(name, math.nan)


def _agent_value(name: str, agent) -> float:
    means = agent.model.agent_means
    return math.nan if means is None else float(means[name][agent.column])


class MarketCollector(mesa.DataCollector):
    """DataCollector with a column per metric (replica mean) and per agent field."""

    def __init__(self, metrics: list[str], fields: list[str] | None):
        super().__init__(
            model_reporters={m: partial(_model_value, m) for m in metrics},
            agent_reporters={f: partial(_agent_value, f) for f in fields} if fields else None,
        )

    def skip_step(self, steps: int = 1) -> None:
        """Steps without collection: a NaN row each, so that row s stays step s."""
        for column in self.model_vars.values():
            column.extend([math.nan] * steps)


def frames(model, rows: list[tuple[int, dict]], agent_rows: list[tuple[int, dict]]
           ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Tidy tables from the market's per-replica rows: metrics (one row per step and replica:
    `step`, `replica`, then the metrics) and agents (one row per step, replica and advertiser:
    `step`, `replica`, `agent`, `group`, then the ledger fields; None when not kept)."""
    R = model.R
    if rows:
        names = ["step", *(k for k in rows[0][1] if k != "step")]  # step first, then replica
        metrics = pd.DataFrame({k: np.concatenate([r[k] for _, r in rows]) for k in names})
        metrics.insert(1, "replica", np.tile(np.arange(R, dtype=np.int64), len(rows)))
    else:
        metrics = pd.DataFrame()
    if not agent_rows:
        return metrics, None
    agents = list(model.advertisers)
    steps = np.repeat(np.array([s for s, _ in agent_rows], dtype=np.int64), len(agents))
    ids = np.tile(np.array([a.unique_id for a in agents], dtype=np.int64), len(agent_rows))
    cols = np.tile(np.array([a.column for a in agents], dtype=np.int64), len(agent_rows))
    group = np.tile(np.array([a.group_name for a in agents]), len(agent_rows))
    fields = agent_rows[0][1]
    table = {
        "step": np.repeat(steps, R),
        "replica": np.tile(np.arange(R, dtype=np.int64), len(ids)),
        "agent": np.repeat(ids, R),
        "group": np.repeat(group, R),
    }
    for c in fields:
        # per collection [R, n] -> agent-major blocks of R replicas, as the rows above
        blocks = [rec[c][:, cols[:len(agents)]].T.reshape(-1) for _, rec in agent_rows]
        table[c] = np.concatenate(blocks)
    return metrics, pd.DataFrame(table)
