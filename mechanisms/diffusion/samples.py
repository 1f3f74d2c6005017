"""Readable diffusion-auction samples: the base prompt, who took part with what value and bid,
each advertiser's alignment with the kept image and its payment, and the kept image itself as a
PNG attachment (the records of samples.jsonl; see `genmarket.market.engine.seam.Sample`).

Only the few auctions asked for leave the device, one transfer per tensor; the image is drawn
by the backend's `to_png` (a picture of its concepts for the concept space, the image itself for
a diffusers model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genmarket.mechanisms.diffusion.auction import DiffusionRun

__all__ = ["diffusion_samples"]


def _num(x) -> float:
    """A float to 6 significant digits: readable, and lines stay short."""
    return float(f"{float(x):.6g}")


def diffusion_samples(backend, rows: Sequence[int], base: Tensor, value: Tensor, bids: Tensor,
                      mask: Tensor, run: DiffusionRun, alignment: Tensor,
                      names: Sequence[str], groups: Sequence[str], world
                      ) -> list[dict[str, Any]]:
    """One record per auction in `rows` (indices into the batch's first dimension).

    base [B] long (index into world.base_prompts); value, bids [B, n] — true values and bids per
    unit of alignment; mask [B, n] bool (who took part); run — the auctions' DiffusionRun;
    alignment [B, n] — every advertiser's alignment (a cosine) with the kept image; names,
    groups — each column's advertiser name and group; world — the ImageWorld. Money in value units, every number to 6 significant digits. Returns
    records with `auction` (the row), prompt, chosen (the kept image's index among the k),
    samples (k), quality, welfare (bid-welfare of the kept image), entrants (name, group, prompt,
    value, bid, alignment, payment, payment_raw, utility = value x alignment - payment),
    stayed_out (name, alignment, value_of_image), baseline (its welfare and the slot whose prompt
    won, when run) and `attachments` {"image.png": the kept image}.
    """
    if not rows:
        return []
    idx = torch.as_tensor(list(rows), device=base.device)
    out = run.outcome
    host = {name: x[idx].detach().cpu() for name, x in (
        ("base", base), ("value", value), ("bids", bids), ("mask", mask),
        ("alignment", alignment), ("payment", out.payment), ("raw", out.payment_raw),
        ("chosen", out.chosen), ("welfare", out.welfare), ("quality", run.quality))}
    if run.baseline is not None:
        host["b_welfare"] = run.baseline.welfare[idx].cpu()
        host["b_chosen"] = run.baseline.chosen[idx].cpu()
    k = run.batch.alignment.shape[1]
    records = []
    for j, b in enumerate(rows):  # a handful of auctions per collected round, on the host
        entrants, out_names = [], []
        for i, name in enumerate(names):
            m, a = float(host["value"][j, i]), float(host["alignment"][j, i])
            if not bool(host["mask"][j, i]):
                out_names.append({"name": name, "alignment": _num(a), "value_of_image": _num(m * a)})
                continue
            paid = float(host["payment"][j, i])
            entrants.append({"name": name, "group": groups[i], "prompt": world.advertisers[i],
                             "value": _num(m), "bid": _num(host["bids"][j, i]),
                             "alignment": _num(a), "payment": _num(paid),
                             "payment_raw": _num(host["raw"][j, i]), "utility": _num(m * a - paid)})
        record = {"auction": int(b), "prompt": world.base_prompts[int(host["base"][j])],
                  "chosen": int(host["chosen"][j]), "samples": int(k),
                  "quality": _num(host["quality"][j]), "welfare": _num(host["welfare"][j]),
                  "entrants": entrants, "stayed_out": out_names}
        if "b_welfare" in host:
            record["baseline"] = {"welfare": _num(host["b_welfare"][j]),
                                  "winner_slot": int(host["b_chosen"][j]) // int(k)}
        record["attachments"] = {"image.png": backend.to_png(run.images[b])}
        records.append(record)
    return records

