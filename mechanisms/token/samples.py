"""Readable token-auction samples: the query, the reply the auction wrote as text, and each
entrant's value, bid, payment and value of the reply (the records of samples.jsonl; see
`genmarket.market.engine.seam.Sample`). Only the few auctions asked for leave the device, in one
transfer per tensor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genmarket.mechanisms.token.generate import Reply

__all__ = ["token_samples"]


def _num(x) -> float:
    """A float to 6 significant digits: readable, and lines stay short."""
    return float(f"{float(x):.6g}")


def token_samples(lm, world, rows: Sequence[int], query: Tensor, slots: Tensor, mask: Tensor,
                  reply: Reply, value: Tensor, bids: Tensor, groups: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """One record per auction in `rows` (indices into the batch's first dimension).

    lm — the TokenLM that wrote the replies (its `decode`); world — the language world (query and
    advertiser names); query [B] long; slots [B, n] long (world advertiser of each slot); mask
    [B, n] bool; reply — the auctions' `Reply`; value [B, n] m_i and bids [B, n], money per nat;
    groups — the group of each world advertiser. Returns records with `auction`, query, topic,
    reply (text), tokens (ids, end token included), length, revenue, entrants (name, group,
    value, bid, payment, reply_value = -sum_t m_i D_i(q_t), utility = reply_value - payment,
    mentioned), stayed_out (name, reply_value, mentioned); money per reply, 6 digits.
    """
    if not rows:
        return []
    idx = torch.as_tensor(list(rows), device=query.device)
    host = {name: x[idx].detach().cpu() for name, x in (
        ("q", query), ("slots", slots), ("mask", mask), ("tokens", reply.tokens),
        ("length", reply.length), ("payment", reply.payment), ("reply_value", reply.value),
        ("mentions", reply.mentions), ("value", value), ("bids", bids))}
    records = []
    for k, b in enumerate(rows):  # a handful of auctions per collected round, on the host
        q = world.queries[int(host["q"][k])]
        slot_ids = host["slots"][k]
        entrants, out = [], []
        for i, a in enumerate(slot_ids.tolist()):
            got, paid = float(host["reply_value"][k, i]), float(host["payment"][k, i])
            rec = {"name": world.advertisers[a].name, "group": groups[a]}
            if bool(host["mask"][k, i]):
                rec.update(value=_num(host["value"][k, i]), bid=_num(host["bids"][k, i]),
                           payment=_num(paid), reply_value=_num(got), utility=_num(got - paid),
                           mentioned=bool(host["mentions"][k, i]))
                entrants.append(rec)
            else:
                rec.update(reply_value=_num(got), mentioned=bool(host["mentions"][k, i]))
                out.append(rec)
        tokens = host["tokens"][k]
        records.append({
            "auction": int(b), "query": q.text, "topic": q.topic,
            "reply": lm.decode(tokens, slot_ids),
            "tokens": [t for t in tokens.tolist() if t >= 0],
            "length": int(host["length"][k]),
            "revenue": _num(sum(e["payment"] for e in entrants)),
            "entrants": entrants, "stayed_out": out,
        })
    return records
