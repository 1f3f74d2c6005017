"""The token auction's market adapter: advertisers bid money per nat, enter and leave; the
replies are written token by token by the auction.

Per round: every auction gets a query (the engine's query stream, so a MOSAIC market of the same
seed asks the same queries) and one uniform per step for stable sampling (the family's own
stream, "token.sampling"); every advertiser of the market has a slot in every auction, those
out masked. An advertiser's bid is its policy's choice: a multiplier of its value m_i (money per
nat of divergence) or an absolute bid. `generate` writes the R * B replies at once.

Utilities use the true laws and values. Every advertiser, in or out, gets the reply's value to
it, -sum_t m_i D_i(q_t) (<= 0: the reply is never better for it than its own LLM's); an entrant
also pays. So an advertiser who stays out still bears the reply written without it — its outside
option — and entering pays when its influence on the reply is worth more than the payment
(entry gains compare the two worlds, re-generated on the same uniforms).

Counterfactuals, on the same queries and uniforms: the bid grid (full feedback) and the
per-step misreport metrics sum exact step utilities along the realised reply with each prefix
fixed (`counterfactual.replay`; the later prefix a deviation would have changed is not
re-generated); entry and the whole-reply misreport metric re-generate the replies
(`counterfactual.worlds`), the latter on collection rounds only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.market.engine import streams as S
from genmarket.market.engine.learning import grid_feedback_from_utility
from genmarket.market.engine.seam import Cleared, MarketSpec, Round
from genmarket.mechanisms.backends.text.world import relevance_matrix
from genmarket.mechanisms.base import flipped_masks, get_mechanism
from genmarket.mechanisms.token.counterfactual import replay, worlds
from genmarket.mechanisms.token.generate import generate
from genmarket.mechanisms.token.lm_build import build_token_lm
from genmarket.mechanisms.token.metrics import round_metrics
from genmarket.mechanisms.token.samples import token_samples

__all__ = ["SAMPLING", "TokenAdapter"]

SAMPLING = S.stream_id("token.sampling")  # the uniform of each auction and step


class TokenAdapter:
    """Clears rounds of token auctions on the scenario's language world."""

    def __init__(self, spec: MarketSpec):
        self.spec = spec
        R, B, n = spec.R, spec.B, spec.n
        sc = spec.scenario
        mc = sc.mechanism
        self.mechanism = get_mechanism(mc.kind, **mc.params())
        self.world = spec.world
        self.lm = build_token_lm(sc, self.world, spec.device, spec.dtype,
                                 **mc.lm_settings(sc.language.backend))
        self.L = sc.language.length
        self.Q = len(self.world.queries)
        rel = torch.tensor(relevance_matrix(self.world), device=spec.device)  # [Q, n]
        self.relevant = rel.amax(0) >= 0.5  # relevant to the topic of some query users ask
        self.slots = torch.arange(n, device=spec.device).expand(R * B, n)
        self.temperatures = torch.tensor(mc.temperatures, device=spec.device, dtype=spec.dtype)
        self._bid_k = max((g.bidder.K for g in spec.groups if g.bidder.learns), default=0)
        self._group_of = [g.name for g in spec.groups for _ in range(g.A)]  # per column

    def clear(self, rnd: Round) -> Cleared:
        spec = self.spec
        R, B, n, t = spec.R, spec.B, spec.n, rnd.t
        RB = R * B
        uniform = spec.streams.uniform
        q = (uniform(S.QUERIES, t, (B,), spec.dtype) * self.Q).long().clamp_(max=self.Q - 1)
        q = q.reshape(RB)
        u = uniform(SAMPLING, t, (B, self.L), spec.dtype).reshape(RB, self.L)
        bids = torch.cat([a[2] for a in rnd.acted], -1)  # [R, B, n] money per nat
        b, m, mask = bids.reshape(RB, n), rnd.values.reshape(RB, n), rnd.mask.reshape(RB, n)
        reply = generate(self.lm, self.mechanism, q, self.slots, b, mask, u, values=m)
        gross = reply.value - reply.payment  # payment is 0 for those out
        gain = out_value = None
        if rnd.collect or not spec.fixed_entry:
            fr = worlds(self.lm, self.mechanism, q, self.slots, b.expand(n, RB, n),
                        flipped_masks(mask).view(n, RB, n), u, m)
            idx = torch.arange(n, device=b.device)
            f_value = fr.value.view(n, RB, n)[idx, :, idx].T  # [RB, n]: i's own world
            f_pay = fr.payment.view(n, RB, n)[idx, :, idx].T
            gain = torch.where(mask, gross - f_value, f_value - f_pay - gross)
            out_value = f_value
        alt = []
        if self._bid_k and (spec.full or rnd.window):
            alt.append(self._grid_bids(rnd.values).reshape(RB, n, -1))
        if rnd.collect:
            alt.append(m.unsqueeze(-1) * spec.deviation_grid)
        replayed = None
        if alt:
            replayed = replay(self.lm, self.mechanism, q, self.slots, reply, b, mask, u, m,
                              torch.cat(alt, -1),
                              self.temperatures if rnd.collect else None)
        shape = (R, B, n)
        extra = {"q": q, "u": u, "bids": bids, "reply": reply, "gain": gain,
                 "out_value": out_value, "replayed": replayed}
        return Cleared(reply.mentions.to(spec.dtype).view(shape), reply.payment.view(shape),
                       gross.view(shape), extra)

    def _grid_bids(self, values: Tensor) -> Tensor:
        """[R, B, n, K] every learning group's grid bids (its chosen bid repeated for groups
        that do not learn), padded to the widest grid by repeating the last bid."""
        K = self._bid_k
        blocks = []
        for g in self.spec.groups:
            x = values[..., g.cols]
            block = g.bidder.grid_bids(x) if g.bidder.learns else x.unsqueeze(-1)
            if block.shape[-1] < K:
                block = torch.cat([block, block[..., -1:].expand(*block.shape[:-1],
                                                                 K - block.shape[-1])], -1)
            blocks.append(block)
        return torch.cat(blocks, 2)

    def deviation_utility(self, cleared: Cleared) -> Tensor:
        """[R, B, n, G + 1] the summed step utilities (money) of the misreport metric's bid grid
        (multipliers of m_i, truthful last) along the realised replies; collection rounds."""
        u = cleared.extra["replayed"].bids
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        return u[..., u.shape[-1] - self.spec.deviation_grid.numel():].view(R, B, n, -1)

    def reply_deviation_utility(self, rnd: Round, cleared: Cleared) -> Tensor:
        """[R, B, n, G + 1] each advertiser's utility (money) of whole replies re-generated on the
        round's uniforms with its bid set to each multiplier of the deviation grid times m_i
        (forced in, the others as they were), truthful last: n (G + 1) re-generations."""
        spec = self.spec
        R, B, n = spec.R, spec.B, spec.n
        e = cleared.extra
        grid = spec.deviation_grid
        G1 = grid.numel()
        b, m = e["bids"].reshape(R * B, n), rnd.values.reshape(R * B, n)
        mask = rnd.mask.reshape(R * B, n)
        dev = m.unsqueeze(0) * grid.view(G1, 1, 1)  # [G1, RB, n]
        own = []
        for i in range(n):  # one advertiser's G + 1 worlds at a time: memory n times smaller
            bids, masks = b.expand(G1, R * B, n).clone(), mask.expand(G1, R * B, n).clone()
            bids[..., i], masks[..., i] = dev[..., i], True
            fr = worlds(self.lm, self.mechanism, e["q"], self.slots, bids, masks, e["u"], m)
            own.append((fr.value - fr.payment).view(G1, R * B, n)[..., i])  # [G1, RB]
        return torch.stack(own, -1).permute(1, 2, 0).reshape(R, B, n, G1)

    def feedback(self, rnd: Round, cleared: Cleared, g, role: str):
        c = g.cols
        own = cleared.gross[..., c]
        if not (self.spec.full or rnd.window):
            return own, None
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        util = cleared.extra["replayed"].bids[..., :self._bid_k].view(R, B, n, -1)
        return own, grid_feedback_from_utility(util[:, :, c, :g.bidder.K], rnd.acted[g.index][0],
                                               rnd.mask[..., c], g.bidder.C)

    def entry_gain(self, rnd: Round, cleared: Cleared) -> tuple[Tensor, Tensor]:
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        gain = cleared.extra["gain"].view(R, B, n).mean(1)
        observed = torch.ones_like(rnd.entered) if self.spec.full else rnd.entered
        return gain, observed

    def metrics(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        return round_metrics(self, rnd, cleared)

    def record(self, rnd: Round, cleared: Cleared) -> dict[str, Tensor]:
        R, B, n = self.spec.R, self.spec.B, self.spec.n
        m, entered = rnd.values, rnd.entered
        ent = entered.to(m.dtype)
        reply = cleared.extra["reply"]
        bids = cleared.extra["bids"].mean(1)

        def mean(x):
            return x.reshape(R, B, n).mean(dim=1).double()

        return {
            "value": mean(m),
            "bid": torch.where(entered, bids, torch.full_like(bids, float("nan"))).double(),
            "entered": entered,
            "won": mean(cleared.won),
            "payment": mean(cleared.payment),
            "reply_value": mean(reply.value),
            "utility": (cleared.gross.mean(1) - ent * self.spec.entry_cost).double(),
        }

    def samples(self, rnd: Round, cleared: Cleared, k: int) -> list[dict]:
        """Readable records of replica 0's first k auctions (`token_samples`): the query, the
        reply as text, its length, and each entrant's value, bid, payment, value of the reply
        and whether it is mentioned (money per reply; bids and values money per nat)."""
        e = cleared.extra
        n = self.spec.n
        return token_samples(self.lm, self.world, range(min(k, self.spec.B)), e["q"],
                             self.slots, rnd.mask.reshape(-1, n), e["reply"],
                             rnd.values.reshape(-1, n), e["bids"].reshape(-1, n),
                             self._group_of)
