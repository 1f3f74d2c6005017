"""MOSAIC's market adapter: advertisers report reward multipliers, enter and leave.

Per round: every auction gets a query; the backend draws M candidate replies from the generator
(prompted with the entrants' descriptions, or the reference model) and scores them; the
mechanism allocates, samples the reply and prices it. Utilities use true rewards: an entrant gets
p·r_i - pay_i (expected over the platform's draw of the reply, given the candidates), an
advertiser who stayed out gets p·r_i and pays nothing — its reward for the reply shown, the
outside option of the paper's Section 5.2.

Counterfactuals, on the same queries and random numbers: the report grid (full feedback and the
misreport metric) is exact from the interim utility with the other reports fixed; entering vs
staying out re-generates the candidates with advertiser i's description toggled (context-aware
generator) and re-runs the mechanism — what entry rules learn from and eq. 19's gains.
Rewards and money are in reward units (nats times the advertiser's reward scale).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.market.engine import streams as S
from genmarket.market.engine.learning import grid_feedback_from_utility
from genmarket.market.engine.seam import Cleared, MarketSpec, Round
from genmarket.mechanisms.backends.text.world import build_backend, relevance_matrix
from genmarket.mechanisms.base import get_mechanism
from genmarket.mechanisms.mosaic.mechanism import MosaicBatch
from genmarket.mechanisms.mosaic.metrics import round_metrics
from genmarket.mechanisms.mosaic.samples import mosaic_samples
from genmarket.mechanisms.mosaic.worlds import flipped_masks, own_world_outcomes

__all__ = ["MosaicAdapter"]


class MosaicAdapter:
    """Clears rounds of MOSAIC auctions on the scenario's language world."""

    def __init__(self, spec: MarketSpec):
        self.spec = spec
        self.R, self.B, self.n = spec.R, spec.B, spec.n
        sc = spec.scenario
        mc = sc.mechanism
        self.mechanism = get_mechanism("mosaic", **mc.params())
        self.tau, self.M, self.context_aware = mc.tau, mc.candidates, mc.generator == "context"
        self.world = spec.world
        self.backend = build_backend(sc, self.world, spec.device, spec.dtype)
        self.L = self.backend.length
        self.Q = len(self.world.queries)
        rel = torch.tensor(relevance_matrix(self.world), device=spec.device)  # [Q, n]
        # relevance class: relevant to the topic of some query users ask
        self.relevant = rel.amax(0) >= 0.5  # [n]
        self.slots = torch.arange(spec.n, device=spec.device).expand(spec.R * spec.B, spec.n)
        shifts = [g.bidder.shift for g in spec.groups for _ in range(g.A)]
        self._shift = torch.tensor(shifts, device=spec.device, dtype=spec.dtype)
        self._has_shift = any(shifts)  # read on the host: no device sync per round
        # groups with the same report grid share one grid-utility computation per round
        self._grid_key = {g.index: tuple(g.bidder.grid.tolist()) for g in spec.groups
                          if g.bidder.learns}
        self._group_of = [g.name for g in spec.groups for _ in range(g.A)]  # per column

    def clear(self, rnd: Round) -> Cleared:
        spec = self.spec
        R, B, n, M, t = spec.R, spec.B, spec.n, self.M, rnd.t
        uniform = spec.streams.uniform
        m = rnd.values  # [R, B, n] reward scale (value per unit of alignment)
        # reported scale: the chosen multiplier times the true scale (a shift is added to the
        # rewards themselves, so the bid path's clamp at 0 does not apply)
        scale = torch.cat([g.bidder.grid[a[1]] * m[..., g.cols]
                           for g, a in zip(spec.groups, rnd.acted, strict=True)], -1)

        query = (uniform(S.QUERIES, t, (B,), spec.dtype) * self.Q).long().clamp_(max=self.Q - 1)
        u_cand = uniform(S.CANDIDATES, t, (B, M, self.L), spec.dtype).reshape(R * B, M, self.L)
        mask = rnd.mask.reshape(R * B, n)
        noise = uniform(S.TIES, t, (B,), spec.dtype).reshape(R * B)
        q = query.reshape(R * B)
        m_flat, scale_flat = m.reshape(R * B, n), scale.reshape(R * B, n)

        cand = self._candidates(q, mask, u_cand)
        true = m_flat.unsqueeze(-1) * cand.rewards  # [RB, n, M]
        reported = scale_flat.unsqueeze(-1) * cand.rewards + self._shift.view(1, -1, 1)
        batch = MosaicBatch(reported, mask, cand.log_ref, cand.log_gen, noise)
        out = self.mechanism.run(batch)
        reward = (out.allocation.unsqueeze(1) * true).sum(-1)  # [RB, n] expected true reward
        gross = reward - out.payment  # out.payment is 0 where mask is False
        gain = out_reward = None
        if rnd.collect or not spec.fixed_entry:
            # each advertiser's participation flipped: utility of entering minus staying out
            t_reward, t_gross = self._own_worlds(q, cand, mask, u_cand, m_flat, scale_flat, noise)
            gain = torch.where(mask, gross - t_reward, t_gross - gross)  # [RB, n]
            out_reward = t_reward  # an entrant's reward had it stayed out

        shape = (R, B, n)
        extra = {"q": q, "cand": cand, "true": true, "batch": batch, "out": out, "scale": scale,
                 "gain": gain, "out_reward": out_reward, "reward": reward, "gross_flat": gross,
                 "grid_utility": {}}
        return Cleared(reward.view(shape), out.payment.view(shape), gross.view(shape), extra)

    def _candidates(self, q: Tensor, mask: Tensor, u: Tensor):
        context = mask if self.context_aware else None
        return self.backend.candidates(q, self.slots, context, self.M, u)

    def _own_worlds(self, q, cand, mask, u_cand, value, report, noise) -> tuple[Tensor, Tensor]:
        """(reward, gross) [RB, n] of each advertiser with only its own participation flipped
        (see `own_world_outcomes`): candidates re-generated without (or with) its description
        when the generator is context-aware, the round's own otherwise."""
        n = self.spec.n
        flipped = flipped_masks(mask)
        if self.context_aware:
            fc = self.backend.candidates(q.repeat(n), self.slots.repeat(n, 1), flipped, self.M,
                                         u_cand.repeat(n, 1, 1))
        else:  # the reference generator ignores who takes part: same candidates
            fc = type(cand)(*(x.repeat(n, *(1,) * (x.dim() - 1)) for x in
                              (cand.tokens, cand.log_ref, cand.log_gen, cand.rewards)))
        return own_world_outcomes(self.mechanism, fc, flipped, noise, value, report, self._shift)

    def grid_utility(self, cleared: Cleared, grid: Tensor) -> Tensor:
        """Exact utility of every advertiser at each report multiplier of `grid` (reporting
        grid_k * m_i * r_i, plus its shift), the others' reports fixed, forced in: [R, B, n, K]."""
        true, batch = cleared.extra["true"], cleared.extra["batch"]
        RB, n, M = true.shape
        K = grid.numel()
        alt = true.unsqueeze(2) * grid.view(1, 1, K, 1)  # grid_k * m * r
        alt = alt + self._shift.view(1, n, 1, 1) if self._has_shift else alt
        util = self.mechanism.deviation_utilities(batch, true, alt)  # [RB, n, K]
        return util.view(self.spec.R, self.spec.B, n, K)

    def feedback(self, rnd: Round, cleared: Cleared, g, role: str):
        c = g.cols
        own = cleared.gross[..., c]
        if not (self.spec.full or rnd.window):
            return own, None
        cache = cleared.extra["grid_utility"]  # groups with the same grid share one computation
        key = self._grid_key[g.index]
        if key not in cache:
            cache[key] = self.grid_utility(cleared, g.bidder.grid)
        ctx = rnd.acted[g.index][0]
        return own, grid_feedback_from_utility(cache[key][:, :, c], ctx, rnd.mask[..., c],
                                               g.bidder.C)

    def entry_gain(self, rnd: Round, cleared: Cleared) -> tuple[Tensor, Tensor]:
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        gain = cleared.extra["gain"].view(R, B, n).mean(1)
        observed = torch.ones_like(rnd.entered) if self.spec.full else rnd.entered
        return gain, observed

    def metrics(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        e = cleared.extra
        grid_u = self.grid_utility(cleared, self.spec.deviation_grid)
        return round_metrics(self, e["q"], e["cand"], e["true"], e["batch"], e["out"], e["reward"],
                             e["gross_flat"], e["gain"], e["out_reward"], rnd.values, e["scale"],
                             rnd.entered, grid_u)

    def magnitude(self, rnd: Round, cleared: Cleared) -> float:
        """The largest magnitude an intermediate of the round's utilities and payments reached,
        in reward units: tau * |logsumexp(scores)| (the interim utility's and the offset's size)
        or the largest true or reported reward (`genmarket.market.engine.precision`)."""
        e = cleared.extra
        lse = self.tau * torch.logsumexp(e["out"].scores, -1).abs().amax()
        return float(torch.stack((lse, e["true"].abs().amax(), e["batch"].rewards.abs().amax())).amax())

    def record(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        m, entered = rnd.values, rnd.entered
        ent = entered.to(m.dtype)

        def mean(x):
            return x.reshape(R, B, n).mean(dim=1).double()

        return {
            "value": mean(m),
            "report": mean(cleared.extra["scale"]),
            "entered": entered,
            "reward": mean(cleared.extra["reward"]),
            "payment": mean(cleared.extra["out"].payment),
            "utility": (cleared.gross.mean(1) - ent * self.spec.entry_cost).double(),
        }

    def samples(self, rnd: Round, cleared: Cleared, k: int) -> list[dict]:
        """Readable records of replica 0's first k auctions of the round (`mosaic_samples`):
        the query, the returned reply, the entrants' true and reported reward scales, rewards
        and payments (reward units), and the most probable other candidates."""
        e = cleared.extra
        n = self.spec.n
        return mosaic_samples(self.backend, range(min(k, self.B)), e["q"], self.slots,
                              rnd.mask.reshape(-1, n), e["cand"], e["out"],
                              rnd.values.reshape(-1, n), e["scale"].reshape(-1, n), e["reward"],
                              e["out"].payment, self._group_of)
