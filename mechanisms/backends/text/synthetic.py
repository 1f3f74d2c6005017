"""The synthetic text backend: an embedded language world with no weights, exact sequence
log-probabilities (nats) and batched inverse-CDF sampling, fast enough for millions of auctions.

Replies have exactly L = `length` tokens (never padded). The vocabulary of an auction with n
slots is slot-relative, V = S + n * (1 + P) with S = G + T * W:

    [0, G)            general words
    [G, S)            topic words, W per topic (T = len(world.topics))
    S + i*(1+P) + 0   slot i's brand (decodes to the advertiser's name)
    S + i*(1+P) + p   slot i's products, p = 1..P (words of the advertiser's description)

A token's *kind* is its id for the S shared tokens and S + position for slot tokens (every
brand has kind S). Each kind belongs to one of `states` previous-token states (a fixed random
assignment, `state_of_kind`; with states >= S + 1 + P every kind has its own); state `states` is
the start. Every model is a first-order Markov chain: the law of the next token depends on the
auction and on the state s of the previous token:

    pi_ref  logit(v | s) = base_logits[s, kind(v)] + topic_strength [v is a word of topic(q)]
            + query_noise * query_offsets[q, v] (shared v) + brand_logit (brands)
            + product_logit + relevance_strength * relevance[a_i, topic(q)] (slot i's products)
    pi_i    the advertiser in slot i: pi_ref retargeted, in every state, with targets
            advertiser_brand on {brand_i} and advertiser_product on products_i.
    pi_gen  pi_ref retargeted with targets generator_brand / |P| and generator_product / |P| on
            the brand and products of each participant (the True slots of the context): an
            attention budget that dilutes as |P| grows. No participant: pi_gen = pi_ref.

Retargeting p with disjoint sets A_s and targets a_s (sum a_s < 1): a set with p(A_s) < a_s is
raised to exactly a_s (its tokens scaled by a_s / p(A_s)); every other token, sets already at or
above target included, is scaled by f = (1 - sum_raised a_s) / (1 - sum_raised p(A_s)) <= 1.
So r_i(y) = log pi_i(y) - log pi_ref(y) is a sum over tokens: large on mentions of i, log f < 0
on everything else, more negative for an advertiser unrelated to the query (its products are
rare under pi_ref, so its model moves more mass).
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genmarket.mechanisms.backends.text.base import Candidates, TextWorld, register_backend

__all__ = ["ChainTables", "SyntheticTextBackend", "check_settings"]

GENERAL_WORDS = ("the", "best", "way", "is", "to", "use", "a", "good", "and", "try", "with",
                 "your", "for", "more", "you", "can", "also", "it", "this", "often", "each", "day",
                 "some", "help")
_FILLER = {"and", "the", "for", "with", "that", "from", "your", "their", "offering", "producing",
           "selling", "providing", "making", "who", "which"}


@dataclass(frozen=True)
class ChainTables:
    """The conditional laws of B auctions with n slots, by the previous token's state s
    (K = states + 1 rows, the last one the start), in nats.

    log_ref [B, K, V]    — log pi_ref(v | s).
    log_gen [B, K, V]    — log pi_gen(v | s; c).
    log_w   [B, K, n, 3] — log pi_i(v | s) - log pi_ref(v | s) for the advertiser in slot i, by
                           the class of v relative to slot i: 0 outside i's block, 1 i's brand,
                           2 one of i's products (they all share one ratio).
    """

    log_ref: Tensor
    log_gen: Tensor
    log_w: Tensor


def _rows(table: Tensor, index: Tensor) -> Tensor:
    """table[index] along dim 0 (index_select: several times faster than indexing on CPU)."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


def _retarget(set_logp: Tensor, target: Tensor, active: Tensor, dims: tuple[int, ...]):
    """Mass targeting. set_logp [..., 2] log masses of the sets, target [..., 2] their targets
    (broadcastable), active: which sets are targeted. Returns (log f summed over `dims`, kept as
    size 1; log weight of each set's tokens [..., 2])."""
    raised = (active & (set_logp < target.log())).to(set_logp.dtype)  # arithmetic: where is slow
    gained = (raised * target).sum(dims, keepdim=True)
    lost = (raised * set_logp.exp()).sum(dims, keepdim=True)
    log_f = torch.log1p(-gained) - torch.log1p(-lost)
    return log_f, log_f + raised * (target.log() - set_logp - log_f)


def check_settings(settings: dict[str, Any]) -> None:
    """Check the synthetic world's settings (keyword arguments of `SyntheticTextBackend`; those
    left out take its defaults) without building it, as scenario validation does. Raises
    ValueError `name = value: must be ...` for the first bad one."""
    params = inspect.signature(SyntheticTextBackend.__init__).parameters
    s = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY} | settings

    def check(name, ok, allowed):
        if not ok:
            raise ValueError(f"{name} = {s[name]!r}: must be {allowed}")

    def number(x):
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    for name in ("length", "general_words", "topic_words", "product_words", "states"):
        check(name, isinstance(s[name], int) and number(s[name]) and s[name] >= 1,
              "an integer >= 1")
    check("seed", isinstance(s["seed"], int) and number(s["seed"]) and s["seed"] >= 0,
          "an integer >= 0")
    for name in ("topic_strength", "brand_logit", "product_logit", "relevance_strength"):
        check(name, number(s[name]), "a finite number")
    check("query_noise", number(s["query_noise"]) and s["query_noise"] >= 0,
          "a finite number >= 0")
    for who in ("advertiser", "generator"):
        brand, product = f"{who}_brand", f"{who}_product"
        for name in (brand, product):
            check(name, number(s[name]) and 0 < s[name] < 1, "in (0, 1)")
        if s[brand] + s[product] >= 1:
            raise ValueError(f"{brand} + {product} = {s[brand] + s[product]!r}: must be < 1")


@register_backend("synthetic")
class SyntheticTextBackend:
    """Synthetic language world for the MOSAIC market (the laws: module docstring).

    Public tensors the laws read, on `device` in `dtype`: base_logits [states + 1, S + 1 + P],
    state_of_kind [S + 1 + P] long, query_offsets [len(queries), S], relevance
    [len(advertisers), T], query_topic [len(queries)] long.
    """

    def __init__(self, world: TextWorld, *, device="cpu", dtype=torch.float32, seed: int = 0,
                 length: int = 12, general_words: int = 24, topic_words: int = 4,
                 product_words: int = 3, states: int = 8, topic_strength: float = 2.0,
                 query_noise: float = 0.5, brand_logit: float = -5.0,
                 product_logit: float = -4.0, relevance_strength: float = 3.0,
                 advertiser_brand: float = 0.10, advertiser_product: float = 0.30,
                 generator_brand: float = 0.15, generator_product: float = 0.30):
        check_settings({k: v for k, v in locals().items() if k not in ("self", "world")})
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype = {dtype!r}: must be torch.float32 or torch.float64")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device = {device!r}: not a torch device ({err})") from None
        _check_world(world)

        self.world, self.dtype, self.seed, self.length, self.states = (
            world, dtype, seed, length, states)
        self.general_words, self.topic_words, self.product_words = (
            general_words, topic_words, product_words)
        self.topic_strength, self.query_noise = float(topic_strength), float(query_noise)
        self.brand_logit, self.product_logit = float(brand_logit), float(product_logit)
        self.relevance_strength = float(relevance_strength)
        self.advertiser_brand, self.advertiser_product = advertiser_brand, advertiser_product
        self.generator_brand, self.generator_product = generator_brand, generator_product

        T, W, G = len(world.topics), topic_words, general_words
        S = self.shared = G + T * W
        kinds = S + 1 + product_words
        gen = torch.Generator().manual_seed(seed)  # drawn on the CPU: one world on every device
        like = {"device": self.device, "dtype": dtype}
        self.base_logits = torch.randn(states + 1, kinds, generator=gen,
                                       dtype=torch.float64).to(**like)
        self.query_offsets = torch.randn(len(world.queries), S, generator=gen,
                                         dtype=torch.float64).to(**like)
        self.state_of_kind = (torch.randperm(kinds, generator=gen) % states).to(self.device)
        self.relevance = torch.tensor([[a.relevance.get(t, 0.0) for t in world.topics]
                                       for a in world.advertisers], **like)
        self.query_topic = torch.tensor([world.topics.index(q.topic) for q in world.queries],
                                        device=self.device)
        self._topic_mask = torch.zeros(T, S, **like)
        for t in range(T):
            self._topic_mask[t, G + t * W:G + (t + 1) * W] = 1
        self._products = [self._product_names(a.name, a.description) for a in world.advertisers]

    def _product_names(self, name: str, description: str) -> list[str]:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]*", description)
                 if len(w) > 3 and w.lower() not in _FILLER]
        words = list(dict.fromkeys(words))[-self.product_words:]
        return words + [f"{name}-product-{k}" for k in range(len(words) + 1,
                                                             self.product_words + 1)]

    def vocab_size(self, n: int) -> int:
        """V for auctions with n slots: S shared tokens + n blocks of 1 brand + P products."""
        return self.shared + n * (1 + self.product_words)

    def _layout(self, n: int) -> tuple[Tensor, Tensor]:
        """For n slots: kind [V] long (each token's kind) and cls [V, n] long (its class
        relative to each slot: 0 outside the slot's block, 1 its brand, 2 its product)."""
        S, P1, dev = self.shared, 1 + self.product_words, self.device
        pos = torch.arange(P1, device=dev)
        kind = torch.cat([torch.arange(S, device=dev), S + pos.repeat(n)])
        cls = torch.zeros(S + n * P1, n, dtype=torch.long, device=dev)
        cls[S:].view(n, P1, n)[torch.arange(n), :, torch.arange(n)] = torch.where(pos == 0, 1, 2)
        return kind, cls

    def tables(self, query: Tensor, advertisers: Tensor, context: Tensor | None) -> ChainTables:
        """The chain's conditional laws for B auctions (query [B] long, advertisers [B, n] long,
        context [B, n] bool or None) as ChainTables: exact, in nats."""
        query, advertisers = query.to(self.device), advertisers.to(self.device)
        B, n = advertisers.shape
        if advertisers.numel() and not 0 <= advertisers.min() <= advertisers.max() < len(
                self.world.advertisers):
            raise ValueError(f"advertisers must index world.advertisers, in [0, "
                             f"{len(self.world.advertisers)}): every slot needs an advertiser")
        S, P1, like = self.shared, 1 + self.product_words, {"device": self.device,
                                                           "dtype": self.dtype}
        topic = self.query_topic[query]
        prod = self.product_logit + self.relevance_strength * self.relevance[advertisers,
                                                                             topic[:, None]]
        slots = torch.cat([torch.full_like(prod, self.brand_logit)[..., None],
                           prod[..., None].expand(B, n, P1 - 1)], -1)
        add = torch.cat([self.topic_strength * self._topic_mask[topic]
                         + self.query_noise * self.query_offsets[query], slots.flatten(1)], -1)
        logits = self.base_logits[:, self._layout(n)[0]] + add[:, None]  # [B, K, V]
        log_ref = logits - logits.logsumexp(-1, keepdim=True)
        block = log_ref[..., S:].unflatten(-1, (n, P1))
        set_logp = torch.stack([block[..., 0], block[..., 1:].logsumexp(-1)], -1)  # [B, K, n, 2]

        target = torch.tensor([self.advertiser_brand, self.advertiser_product], **like)
        every = torch.ones((), dtype=torch.bool, device=self.device)
        log_f, log_set = _retarget(set_logp, target, every, (-1,))
        log_w = torch.cat([log_f, log_set], -1)
        if context is None:
            return ChainTables(log_ref, log_ref, log_w)
        context = context.to(self.device, torch.bool)
        size = context.sum(-1).clamp(min=1).to(self.dtype)[:, None, None, None]
        budget = torch.tensor([self.generator_brand, self.generator_product], **like)
        log_g, log_gset = _retarget(set_logp, budget / size, context[:, None, :, None], (-2, -1))
        K = log_ref.shape[1]
        shift = torch.cat([log_g[..., 0].expand(B, K, S), torch.cat(
            [log_gset[..., :1], log_gset[..., 1:].expand(B, K, n, P1 - 1)], -1).flatten(2)], -1)
        return ChainTables(log_ref, log_ref + shift, log_w)

    def next_token_logprobs(self, query: Tensor, advertisers: Tensor, context: Tensor | None,
                            prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Next-token laws after token prev [B] long (-1: the start). Returns log pi_ref [B, V],
        log pi_gen [B, V] and log pi_i [B, n, V] for each slot's advertiser, nats."""
        B, n = advertisers.shape
        tab = self.tables(query, advertisers, context)
        kind, cls = self._layout(n)
        prev = prev.to(self.device)
        s = torch.where(prev < 0, self.states, self.state_of_kind[kind[prev.clamp(min=0)]])
        rows = torch.arange(B, device=self.device)
        log_ref = tab.log_ref[rows, s]
        log_w = tab.log_w[rows, s].gather(-1, cls.T.expand(B, -1, -1))  # [B, n, V]
        return log_ref, tab.log_gen[rows, s], log_ref[:, None] + log_w

    def _walk(self, tab: ChainTables, M: int, next_token) -> Candidates:
        """Run the chain over L positions for B x M replies; next_token(t, row [B, M]) gives the
        tokens [B, M] at position t, row = b * K + state of the previous token."""
        B, K, V = tab.log_ref.shape
        n = tab.log_w.shape[2]
        kind, cls = self._layout(n)
        state_of = self.state_of_kind[kind]
        first = torch.arange(B, device=self.device)[:, None] * K
        row = (first + self.states).expand(B, M)
        ref, gen, w = tab.log_ref.reshape(-1), tab.log_gen.reshape(-1), tab.log_w.reshape(-1)
        at_w = 3 * torch.arange(n, device=self.device) + cls  # [V, n]: offset in log_w rows
        log_ref = torch.zeros(B, M, dtype=self.dtype, device=self.device)
        log_gen, rewards = torch.zeros_like(log_ref), log_ref.new_zeros(B, M, n)
        tokens = torch.empty(B, M, self.length, dtype=torch.long, device=self.device)
        for t in range(self.length):
            v = next_token(t, row)
            tokens[:, :, t] = v
            log_ref += _rows(ref, row * V + v)
            log_gen += _rows(gen, row * V + v)
            rewards += _rows(w, (3 * n * row)[..., None] + _rows(at_w, v))
            row = first + _rows(state_of, v)
        return Candidates(tokens, log_ref, log_gen, rewards.transpose(1, 2).contiguous())

    def candidates(self, query: Tensor, advertisers: Tensor, context: Tensor | None, M: int,
                   uniforms: Tensor) -> Candidates:
        """Draw M replies per auction from pi_gen by inverse CDF on uniforms [B, M, L] and score
        them. Returns Candidates: tokens [B, M, L] long (no padding), log_ref and log_gen [B, M],
        rewards [B, n, M] (log pi_i - log pi_ref), nats, in the backend's dtype and device."""
        B = advertisers.shape[0]
        if uniforms.shape != (B, M, self.length):
            raise ValueError(f"uniforms shape {tuple(uniforms.shape)}: must be "
                             f"(B, M, length) = {(B, M, self.length)}")
        tab = self.tables(query, advertisers, context)
        K, V = tab.log_ref.shape[1:]
        # inverse CDF in two levels, groups of `size` tokens then a token in the group: the
        # token a search of the whole row finds, for a fraction of the memory traffic
        size = math.isqrt(V - 1) + 1
        groups = -(-V // size)
        cdf = torch.nn.functional.pad(tab.log_gen.exp(), (0, groups * size - V)).cumsum(-1)
        cdf = cdf.view(B * K * groups, size)
        ends = cdf[:, -1].reshape(B * K, groups).contiguous()
        uniforms = uniforms.to(self.device, self.dtype)

        def draw(t, row):
            top = _rows(ends, row)  # [B, M, groups]
            x = uniforms[:, :, t, None] * top[..., -1:]
            g = torch.searchsorted(top, x, right=True).clamp_(max=groups - 1)
            fine = _rows(cdf, row * groups + g[..., 0])  # [B, M, size]
            i = torch.searchsorted(fine, x, right=True).clamp_(max=size - 1)
            return (g * size + i).clamp_(max=V - 1)[..., 0]

        return self._walk(tab, M, draw)

    def score(self, tokens: Tensor, query: Tensor, advertisers: Tensor,
              context: Tensor | None) -> Candidates:
        """Score given replies tokens [B, M, L] long: the same Candidates, bit for bit, that
        `candidates` returns for the replies it draws."""
        B, M, L = tokens.shape
        V = self.vocab_size(advertisers.shape[1])
        if L != self.length or B != advertisers.shape[0]:
            raise ValueError(f"tokens shape {tuple(tokens.shape)}: must be (B, M, {self.length})")
        tokens = tokens.to(self.device)
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= V):
            raise ValueError(f"tokens must be ids in [0, {V}) (V for {advertisers.shape[1]} slots)")
        return self._walk(self.tables(query, advertisers, context), M, lambda t, r: tokens[:, :, t])

    def log_partition(self, query: Tensor, advertisers: Tensor, weights: Tensor) -> Tensor:
        """Exact log Z [B] = log sum over all V^L replies of pi_ref(y|x) exp(sum_i weights[b, i]
        r_i(y)), nats, by the forward algorithm over the chain (weights [B, n])."""
        B, n = advertisers.shape
        tab = self.tables(query, advertisers, None)
        K, S, P1 = tab.log_ref.shape[1], self.shared, 1 + self.product_words
        w = weights.to(self.device, self.dtype)[:, None, :, None]  # [B, 1, n, 1]
        rest = (w[..., 0] * tab.log_w[..., 0]).sum(-1, keepdim=True)  # every token: [B, K, 1]
        own = w * (tab.log_w[..., 1:] - tab.log_w[..., :1])  # slot i's block, beyond that
        own = torch.cat([own[..., :1], own[..., 1:].expand(B, K, n, P1 - 1)], -1).flatten(2)
        log_t = tab.log_ref + rest + torch.cat([own.new_zeros(B, K, S), own], -1)
        kind = self._layout(n)[0]
        to_state = torch.nn.functional.one_hot(self.state_of_kind[kind], K).to(self.dtype)
        alpha = log_t[:, self.states]  # log of the mass of each first token
        for _ in range(self.length - 1):
            top = alpha.amax(-1, keepdim=True)
            by_state = ((alpha - top).exp() @ to_state).log() + top  # [B, K]
            alpha = (by_state[..., None] + log_t).logsumexp(1)
        return alpha.logsumexp(-1)

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's token ids [L] (-1 ignored) -> text. Slot tokens name the advertiser of
        that slot when advertisers [n] (indices into world.advertisers) is given."""
        G, W, S, P1 = self.general_words, self.topic_words, self.shared, 1 + self.product_words
        words = []
        for v in (x for x in tokens.tolist() if x >= 0):
            if v < G:
                words.append(GENERAL_WORDS[v] if v < len(GENERAL_WORDS) else f"word-{v}")
            elif v < S:
                t, k = divmod(v - G, W)
                topic = self.world.topics[t].replace(" ", "-")
                words.append(topic if k == 0 else f"{topic}-{k}")
            elif advertisers is None:
                i, pos = divmod(v - S, P1)
                words.append(f"<slot {i} brand>" if pos == 0 else f"<slot {i} product {pos}>")
            else:
                i, pos = divmod(v - S, P1)
                a = int(advertisers[i])
                words.append(self.world.advertisers[a].name if pos == 0
                             else self._products[a][pos - 1])
        return " ".join(words)


def _check_world(world: TextWorld) -> None:
    """ValueError unless the world has topics, queries on known topics and advertisers whose
    relevance names known topics with values in [0, 1]."""
    for name in ("topics", "queries", "advertisers"):
        if not getattr(world, name):
            raise ValueError(f"world.{name} is empty: the synthetic backend needs at least one")
    if len(set(world.topics)) != len(world.topics):
        raise ValueError(f"world.topics = {world.topics!r}: must be distinct")
    for j, q in enumerate(world.queries):
        if q.topic not in world.topics:
            raise ValueError(f"world.queries[{j}].topic = {q.topic!r}: not one of "
                             f"{', '.join(world.topics)}")
    for j, a in enumerate(world.advertisers):
        for topic, value in a.relevance.items():
            if topic not in world.topics or not 0 <= value <= 1:
                raise ValueError(f"world.advertisers[{j}].relevance[{topic!r}] = {value!r}: the "
                                 f"topic must be one of {', '.join(world.topics)}, the value in "
                                 "[0, 1]")
