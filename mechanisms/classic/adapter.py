"""The classic auctions' market adapter: bids in, the round and every counterfactual bid cleared
together by one `run_with_deviations` call, on the same auctions and tie-break numbers.

Counterfactual segments, [R, B, n, k] bids each: "bid" (every learning bidder's grid, full
feedback), "report" (the bids each delegating group's autobidder would place for every report
on its grid), "enter" (the round's own bid, forced in: the entry counterfactual of those who
stayed out), "dev" (the misreport metric's grid, on collection rounds).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.agents.advertiser import per_group
from genmarket.market.engine import streams as S
from genmarket.market.engine.learning import grid_feedback
from genmarket.market.engine.seam import Cleared, MarketSpec, Round
from genmarket.mechanisms.base import AuctionBatch, get_mechanism, run_with_deviations
from genmarket.mechanisms.classic.metrics import round_metrics

__all__ = ["ClassicAdapter"]


class ClassicAdapter:
    """Clears first-price, second-price, GSP, VCG (or any plug-in over `AuctionBatch`) rounds."""

    # its rounds have no graph break or host sync: a market may run them compiled
    # (genmarket.market.engine.compiled; tests/test_compiled.py checks the numbers)
    compiles = True

    def __init__(self, spec: MarketSpec):
        self.spec = spec
        sc = spec.scenario
        self.mechanism = get_mechanism(sc.mechanism.kind, **sc.mechanism.params())
        # click-through rate per slot; one unit slot for mechanisms without slots
        self.slot_ctrs = list(getattr(self.mechanism, "ctrs", None) or [1.0])
        R, B, n = spec.R, spec.B, spec.n
        self._flat_fixed = None
        if spec.fixed_entry:  # the participation mask of every round, built once: [R * B, n]
            self._flat_fixed = spec.fixed_entered.unsqueeze(1).expand(R, B, n).reshape(R * B, n)
        groups = spec.groups
        # grid widths of the learners' counterfactual segments: every round with full feedback;
        # with bandit feedback only on the summary window's rounds, for the convergence
        # diagnostics (the learners never see them)
        self._bid_k = max((g.bidder.K for g in groups if g.bidder.learns), default=0)
        reporters = [g for g in groups if g.reporter is not None and g.reporter.learns]
        self._rep_k = max((g.reporter.K for g in reporters), default=0)
        self._names = [(g.name, f"{g.name}-{k + 1}" if g.A > 1 else g.name)
                       for g in groups for k in range(g.A)]  # (group, name) per column
        self._delegates = any(g.reporter is not None for g in groups)

    def clear(self, rnd: Round) -> Cleared:
        spec = self.spec
        R, B, n, t = spec.R, spec.B, spec.n, rnd.t
        acted = rnd.acted
        bids = acted[0][2] if len(acted) == 1 else torch.cat([a[2] for a in acted], dim=-1)
        segments: dict[str, Tensor] = {}
        # with bandit feedback the grids are the diagnostics' alone: cleared in a batch of their
        # own, so that the round's outcome and metrics are those of a run without them
        grids: dict[str, Tensor] = segments if spec.full else {}
        if self._bid_k and (spec.full or rnd.window):
            grids["bid"] = self._padded(
                lambda g, x: g.bidder.grid_bids(x) if g.bidder.learns else x.unsqueeze(-1),
                rnd.v_hat, self._bid_k)
        if self._rep_k and (spec.full or rnd.window):
            grids["report"] = self._padded(
                lambda g, x, u: g.bids_for_reports(x, g.reporter.grid, u, t)
                if g.reporter is not None and g.reporter.learns else x.unsqueeze(-1),
                rnd.values, self._rep_k, rnd.u_act)
        if spec.full and not spec.fixed_entry:
            segments["enter"] = bids.unsqueeze(-1)
        if rnd.collect:
            grid = spec.deviation_grid
            segments["dev"] = per_group(
                spec.groups, lambda g, x, u: g.bids_for_reports(x, grid, u, t), rnd.values,
                rnd.u_act, dim=2)
        flat_mask = self._flat_fixed if spec.fixed_entry else rnd.mask.reshape(R * B, n)
        noise = spec.streams.uniform(S.TIES, t, (B, n), spec.dtype)
        batch = AuctionBatch(bids.reshape(R * B, n), flat_mask, noise.reshape(R * B, n))
        out, cf = self._clear(batch, segments)
        if grids is not segments and grids:
            cf.update(self._clear(batch, grids)[1])
        alloc = out.allocation.reshape(R, B, n)
        pay = out.payment.reshape(R, B, n)
        gross = rnd.values * alloc - pay  # true utility per auction before entry cost; 0 when out
        return Cleared(alloc, pay, gross, {"bids": bids, "cf": cf})

    def _padded(self, fn, x: Tensor, K: int, *more: Tensor) -> Tensor:
        """Per-group [R, B, A, k] blocks padded to K columns by repeating the last one."""
        def one(g, xs, *ms):
            block = fn(g, xs, *ms)
            if block.shape[-1] < K:
                block = torch.cat([block, block[..., -1:].expand(*block.shape[:-1], K - block.shape[-1])], -1)
            return block
        return torch.cat([one(g, x[..., g.cols], *(m[..., g.cols] for m in more))
                          for g in self.spec.groups], dim=2)

    def _clear(self, batch: AuctionBatch, segments: dict[str, Tensor]):
        """Run the round's auctions and, if any, the counterfactual bids of `segments`
        ([R, B, n, k] each). Returns (Outcome, {name: (allocation, payment) [R, B, n, k]})."""
        if not segments:
            return self.mechanism.run(batch), {}
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        alt = torch.cat(list(segments.values()), dim=-1) if len(segments) > 1 else next(iter(segments.values()))
        out, alloc, pay = run_with_deviations(self.mechanism, batch, alt.reshape(R * B, n, -1))
        alloc, pay = alloc.reshape(R, B, n, -1), pay.reshape(R, B, n, -1)
        cf, at = {}, 0
        for name, seg in segments.items():
            k = seg.shape[-1]
            cf[name] = (alloc[..., at:at + k], pay[..., at:at + k])
            at += k
        return out, cf

    def feedback(self, rnd: Round, cleared: Cleared, g, role: str):
        c = g.cols
        cf = cleared.extra["cf"]
        if role == "bidder":
            vh = rnd.v_hat[..., c]
            # the autobidder values wins at the reported value (the true one when not delegated)
            own = (vh * cleared.won[..., c] - cleared.payment[..., c] if g.reporter is not None
                   else cleared.gross[..., c])
            if not (self.spec.full or rnd.window):
                return own, None
            ctx = rnd.acted[g.index][0]
            a_k, p_k = cf["bid"]
            K = g.bidder.K
            return own, grid_feedback(vh, a_k[..., c, :K], p_k[..., c, :K], ctx, rnd.mask[..., c],
                                      g.bidder.C)
        own = cleared.gross[..., c]
        if not (self.spec.full or rnd.window):
            return own, None
        rctx = rnd.reports[g.index][0]
        a_k, p_k = cf["report"]
        K = g.reporter.K
        return own, grid_feedback(rnd.values[..., c], a_k[..., c, :K], p_k[..., c, :K], rctx,
                                  rnd.mask[..., c], g.reporter.C)

    def entry_gain(self, rnd: Round, cleared: Cleared) -> tuple[Tensor, Tensor]:
        gain = cleared.gross.mean(dim=1)
        if not self.spec.full:
            return gain, rnd.entered
        a_k, p_k = cleared.extra["cf"]["enter"]
        would = (rnd.values * a_k[..., 0] - p_k[..., 0]).mean(dim=1)
        return torch.where(rnd.entered, gain, would), torch.ones_like(rnd.entered)

    def metrics(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        return round_metrics(rnd.values, cleared.extra["bids"], rnd.entered, cleared.won,
                             cleared.payment, cleared.gross, cleared.extra["cf"]["dev"],
                             self.slot_ctrs, self.spec.entry_cost)

    def record(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        v, entered = rnd.values, rnd.entered
        ent = entered.to(v.dtype)
        nan = torch.full_like(ent, float("nan"))

        def mean(x):
            return x.mean(dim=1).double()

        return {
            "value": mean(v),
            "report": mean(rnd.v_hat),
            "bid": torch.where(entered, cleared.extra["bids"].mean(dim=1), nan).double(),
            "entered": entered,
            "won": mean(cleared.won),
            "payment": mean(cleared.payment),
            "utility": (cleared.gross.mean(dim=1) - ent * self.spec.entry_cost).double(),
        }

    def samples(self, rnd: Round, cleared: Cleared, k: int) -> list[dict]:
        """Replica 0's first k auctions of the round: each entrant's group, name, value, bid (and
        the value its autobidder saw when it delegates), units won and payment (value units),
        sorted by bid, highest first. One transfer to the host."""
        k = min(k, self.spec.B)
        rows = [rnd.values[0, :k], cleared.extra["bids"][0, :k], cleared.won[0, :k],
                cleared.payment[0, :k], rnd.mask[0, :k].to(rnd.values.dtype)]
        if self._delegates:
            rows.append(rnd.v_hat[0, :k])
        host = torch.stack([x.to(rnd.values.dtype) for x in rows]).double().cpu().tolist()
        out = []
        for b in range(k):
            bidders = []
            for i, (group, name) in enumerate(self._names):
                if not host[4][b][i]:
                    continue
                rec = {"name": name, "group": group, "value": _num(host[0][b][i]),
                       "bid": _num(host[1][b][i]), "won": _num(host[2][b][i]),
                       "payment": _num(host[3][b][i])}
                if self._delegates:
                    rec["report"] = _num(host[5][b][i])
                bidders.append(rec)
            bidders.sort(key=lambda r: -r["bid"])
            out.append({"auction": b, "bidders": bidders,
                        "revenue": _num(sum(r["payment"] for r in bidders))})
        return out


def _num(x: float) -> float:
    """A float to 6 significant digits: readable, and lines stay short."""
    return float(f"{x:.6g}")
