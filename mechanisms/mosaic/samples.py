"""Readable MOSAIC samples: the query, the returned reply as text, who took part with what true
and reported reward scales, what each got and paid, and the other candidates with their
probabilities (the records of samples.jsonl; see `genmarket.market.engine.seam.Sample`).

Only the few auctions asked for leave the device, in one transfer per tensor; the replies are
decoded with the text backend's `decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genmarket.mechanisms.backends.text.base import Candidates
from genmarket.mechanisms.mosaic.mechanism import MosaicOutcome

__all__ = ["OTHERS", "mosaic_samples"]

OTHERS = 3  # other candidates kept per sample, the most probable first: keeps the file small


def _num(x) -> float:
    """A float to 6 significant digits: readable, and lines stay short."""
    return float(f"{float(x):.6g}")


def mosaic_samples(backend, rows: Sequence[int], query: Tensor, slots: Tensor, mask: Tensor,
                   cand: Candidates, out: MosaicOutcome, value: Tensor, report: Tensor,
                   reward: Tensor, payment: Tensor, groups: Sequence[str] | None = None,
                   more: dict[str, Tensor] | None = None, others: int = OTHERS
                   ) -> list[dict[str, Any]]:
    """One record per auction in `rows` (indices into the batch's first dimension).

    query [B] long (index into backend.world.queries); slots [B, n] long (index into
    backend.world.advertisers of the advertiser in each slot); mask [B, n] bool (who took part);
    cand — the auction's Candidates (tokens [B, M, L], rewards [B, n, M] in nats); out — the
    mechanism's outcome (allocation [B, M], choice [B]); value, report [B, n] — true and reported
    reward scales; reward [B, n] — each entrant's expected true reward over the platform's draw;
    payment [B, n]; groups — the group of each world advertiser (None: not recorded); more —
    further per-entrant columns {name: [B, n]} (the one-shot's reward and utility gains).
    Rewards and payments are in reward units (nats times the reward scale), every number to 6
    significant digits. Returns records with
    `auction` (the row), query, topic, reply (decoded), tokens (the reply's ids, padding
    dropped), chosen (its candidate index) and probability, entrants (name, group, value,
    report, reward, reward_of_reply, payment, utility = reward - payment), stayed_out (names),
    candidates (the `others` most probable other candidates: index, probability, reply) and
    candidates_total (M).
    """
    if not rows:
        return []
    idx = torch.as_tensor(list(rows), device=query.device)
    choice = out.choice[idx]
    chosen_reward = cand.rewards[idx].gather(
        -1, choice.view(-1, 1, 1).expand(-1, cand.rewards.shape[1], 1)).squeeze(-1)  # [k, n]
    host = {name: x[idx].detach().cpu() for name, x in (
        ("q", query), ("slots", slots), ("mask", mask), ("tokens", cand.tokens),
        ("p", out.allocation), ("value", value), ("report", report), ("reward", reward),
        ("payment", payment), *((f"more.{c}", x) for c, x in (more or {}).items()))}
    choice, chosen_reward = choice.cpu(), chosen_reward.cpu()
    world = backend.world
    records = []
    for k, b in enumerate(rows):  # a handful of auctions per collected round, on the host
        q = world.queries[int(host["q"][k])]
        slot_ids = host["slots"][k]
        j = int(choice[k])
        p = host["p"][k]

        def text(c: int, _k=k, _slots=slot_ids) -> str:
            return backend.decode(host["tokens"][_k, c], _slots)

        entrants, out_names = [], []
        for i, a in enumerate(slot_ids.tolist()):
            name = world.advertisers[a].name
            if not bool(host["mask"][k, i]):
                out_names.append(name)
                continue
            m = float(host["value"][k, i])
            got, paid = float(host["reward"][k, i]), float(host["payment"][k, i])
            r = _num
            entry = {"name": name}
            if groups is not None:
                entry["group"] = groups[a]
            entry.update(value=r(m), report=r(host["report"][k, i]), reward=r(got),
                         reward_of_reply=r(m * float(chosen_reward[k, i])), payment=r(paid),
                         utility=r(got - paid))
            entry.update({c: r(host[f"more.{c}"][k, i]) for c in more or {}})
            entrants.append(entry)
        order = [c for c in torch.argsort(p, descending=True, stable=True).tolist() if c != j]
        records.append({
            "auction": int(b), "query": q.text, "topic": q.topic,
            "reply": text(j), "tokens": [t for t in host["tokens"][k, j].tolist() if t >= 0],
            "chosen": j, "probability": _num(p[j]),
            "entrants": entrants, "stayed_out": out_names,
            "candidates": [{"index": c, "probability": _num(p[c]), "reply": text(c)}
                           for c in order[:others]],
            "candidates_total": int(p.numel()),
        })
    return records
