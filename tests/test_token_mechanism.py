"""The token auction's step mechanism and reply loop (SPEC section 2): the seed's worked example,
monotonicity, truthfulness of VCG in distribution space, second price by stable sampling against
brute force, the reference model's conventions, the contract, and the batched loop against
replies generated one at a time."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket.mechanisms import MECHANISMS, get_mechanism
from genmarket.mechanisms.contract import check_example
from genmarket.mechanisms.token import (
    PAYMENTS,
    TokenBatch,
    TokenLinear,
    TokenLM,
    TokenLogLinear,
    examples,
    generate,
    token_batch,
)
from genmarket.mechanisms.token.aggregate import DIVERGENCE_CAP, divergence, others
from genmarket.mechanisms.token.payments import second_price_search

F64 = torch.float64
INF = float("-inf")
CLASSES = [TokenLinear, TokenLogLinear]
seeds = st.integers(0, 2**31 - 1)
dims = st.tuples(st.integers(1, 4), st.integers(2, 6))  # n, V
b0s = st.sampled_from([0.0, 0.0, 0.3, 2.0])


def instance(seed: int, n: int, V: int, B: int = 6, scale: float = 2.0) -> TokenBatch:
    """B random auctions (float64), every slot present, bids on (0, 2)."""
    g = torch.Generator().manual_seed(seed)
    logp = torch.log_softmax(scale * torch.randn(B, n, V, generator=g, dtype=F64), -1)
    bids = 0.05 + 1.95 * torch.rand(B, n, generator=g, dtype=F64)
    log_ref = torch.log_softmax(scale * torch.randn(B, V, generator=g, dtype=F64), -1)
    uniform = torch.rand(B, generator=g, dtype=F64)
    return TokenBatch(logp, bids, torch.ones(B, n, dtype=torch.bool), log_ref, uniform)


def with_bid(batch: TokenBatch, i: int, b) -> TokenBatch:
    """The batch with slot i present at bid b (a number or [B])."""
    bids, mask = batch.bids.clone(), batch.mask.clone()
    bids[:, i], mask[:, i] = torch.as_tensor(b, dtype=bids.dtype), True
    return dataclasses.replace(batch, bids=bids, mask=mask)


def tokens_over(mech, batch: TokenBatch, i: int, grid: torch.Tensor) -> torch.Tensor:
    """Token [B, G] drawn when slot i bids grid[b, g] (one run over B * G rows)."""
    B, G = grid.shape
    rep = TokenBatch(*(x.repeat_interleave(G, 0) for x in dataclasses.astuple(batch)))
    return mech.run(with_bid(rep, i, grid.reshape(-1))).token.view(B, G)


# --- aggregation ------------------------------------------------------------------------------

def test_worked_example_of_the_seed():
    # "Large" = 0, "Generative" = 1; bids 1, 2, 2 -> [.56, .44], pay-as-bid charges 1, 2, 2
    p = torch.tensor([[[0.8, 0.2], [1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    batch = TokenBatch(p.log(), torch.tensor([[1.0, 2.0, 2.0]], dtype=F64),
                       torch.ones(1, 3, dtype=torch.bool), torch.full((1, 2), -math.log(2), dtype=F64),
                       torch.tensor([0.5], dtype=F64))
    out = TokenLinear(payment="pay_as_bid").run(batch)
    assert torch.allclose(out.logq.exp(), torch.tensor([[0.56, 0.44]], dtype=F64))
    assert out.token.tolist() == [0]  # u = 0.5 < 0.56
    assert out.payment.tolist() == [[1.0, 2.0, 2.0]]
    # log-linear: a token ruled out by a positive-weight model gets q = 0; here every token is,
    # so q falls back to the reference law
    assert torch.allclose(TokenLogLinear().run(batch).logq.exp(), torch.tensor([[0.5, 0.5]], dtype=F64))


@settings(max_examples=60, deadline=None)
@given(seeds, dims, b0s)
def test_log_linear_is_the_normalised_weighted_geometric_mean(seed, nv, b0):
    batch = instance(seed, *nv)
    w = torch.cat([batch.bids, torch.full_like(batch.bids[:, :1], b0)], -1)
    logs = torch.cat([batch.logp, batch.log_ref[:, None]], 1)
    geo = (w[..., None] * logs).sum(1) / w.sum(-1, keepdim=True)
    lin = (w[..., None] * logs.exp()).sum(1) / w.sum(-1, keepdim=True)
    assert torch.allclose(TokenLogLinear(reference_weight=b0).run(batch).logq.exp(),
                          torch.softmax(geo, -1))
    assert torch.allclose(TokenLinear(reference_weight=b0).run(batch).logq.exp(), lin)


@pytest.mark.parametrize("cls", CLASSES)
def test_reference_model_conventions(cls):
    batch = instance(3, 3, 5)
    nobody = dataclasses.replace(batch, mask=torch.zeros_like(batch.mask))
    out = cls(payment="vcg").run(nobody)  # no entrant, b_0 = 0: the platform's own reply
    assert torch.allclose(out.logq, batch.log_ref) and (out.weight == 0).all()
    assert (out.payment == 0).all()
    # b_0 > 0 is one more participant: the same as a slot holding the reference at bid b_0
    extra = TokenBatch(torch.cat([batch.logp, batch.log_ref[:, None]], 1),
                       torch.cat([batch.bids, torch.full_like(batch.bids[:, :1], 0.7)], 1),
                       torch.ones(6, 4, dtype=torch.bool), batch.log_ref, batch.uniform)
    a, b = cls(payment="vcg", reference_weight=0.7).run(batch), cls(payment="vcg").run(extra)
    assert torch.allclose(a.logq, b.logq) and torch.equal(a.token, b.token)
    assert torch.allclose(a.payment, b.payment[:, :3])  # the reference is among the others
    assert torch.allclose(cls(reference_weight=0.7).run(nobody).logq, batch.log_ref)


@pytest.mark.parametrize("cls", CLASSES)
def test_impossible_tokens_and_absent_garbage(cls):
    batch = instance(5, 3, 6)
    logp = batch.logp.clone()
    logp[:, 0, :2] = INF  # slot 0 rules out tokens 0 and 1
    logp[:, 0] = torch.log_softmax(logp[:, 0], -1)
    mask = torch.tensor([True, True, False]).expand(6, 3)
    for payment in PAYMENTS:
        mech = cls(payment=payment, reference_weight=0.5)
        out = mech.run(dataclasses.replace(batch, logp=logp, mask=mask))
        junk = logp.clone()
        junk[:, 2] = torch.where(torch.arange(6) % 2 == 0, INF, 1e30)  # absent: anything
        again = mech.run(dataclasses.replace(batch, logp=junk, mask=mask))
        assert torch.equal(out.logq, again.logq) and torch.equal(out.payment, again.payment)
        assert torch.isfinite(out.payment).all() and torch.isfinite(out.divergence[:, :2]).all()
        if cls is TokenLogLinear:
            assert (out.logq[:, :2] == INF).all()  # ruled out by a positive-weight model
        assert (out.token >= 2).all() if cls is TokenLogLinear else True
    # a law that rules out what an advertiser wants costs the cap, not infinity
    d = divergence(torch.tensor([0.0, INF]), torch.tensor([INF, 0.0]), "linear")
    assert d.item() == DIVERGENCE_CAP


@pytest.mark.parametrize("cls", CLASSES)
def test_disjoint_supports_fall_back_to_the_reference(cls):
    p = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]], dtype=F64).log()
    ref = torch.tensor([[0.2, 0.3, 0.5]], dtype=F64).log()
    batch = TokenBatch(p, torch.tensor([[1.0, 1.0]], dtype=F64), torch.ones(1, 2, dtype=torch.bool),
                       ref, torch.tensor([0.1], dtype=F64))
    out = cls(payment="vcg").run(batch)
    want = ref if cls is TokenLogLinear else torch.tensor([[0.5, 0.25, 0.25]], dtype=F64).log()
    assert torch.allclose(out.logq, want)
    assert torch.isfinite(out.payment).all() and torch.isfinite(out.divergence).all()


# --- incentives -------------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(seeds, dims, b0s, st.sampled_from(CLASSES), st.floats(0.0, 3.0), st.floats(0.0, 3.0))
def test_raising_a_bid_lowers_own_divergence(seed, nv, b0, cls, x, y):
    batch, mech = instance(seed, *nv), cls(reference_weight=b0)
    lo, hi = min(x, y), max(x, y)
    for i in range(nv[0]):
        d_lo = mech.run(with_bid(batch, i, lo)).divergence[:, i]
        d_hi = mech.run(with_bid(batch, i, hi)).divergence[:, i]
        assert (d_hi <= d_lo + 1e-10 * (1 + d_lo)).all(), (d_lo, d_hi)


@settings(max_examples=80, deadline=None)
@given(seeds, dims, b0s, st.sampled_from(CLASSES))
def test_vcg_truthful_bidding_maximises_each_step(seed, nv, b0, cls):
    batch = instance(seed, *nv)
    g = torch.Generator().manual_seed(seed + 1)
    m = 0.05 + 2.0 * torch.rand(batch.bids.shape, generator=g, dtype=F64)
    grid = torch.linspace(0.0, 4.0, 41, dtype=F64).expand(*m.shape, 41)
    alt = torch.cat([m.unsqueeze(-1), grid, m.unsqueeze(-1) * torch.tensor([0.9, 1.1], dtype=F64)], -1)
    u = cls(payment="vcg", reference_weight=b0).deviation_utilities(batch, batch.logp, m, alt)
    gain = u.amax(-1) - u[..., 0]
    assert (gain <= 1e-9 * (1 + u.abs().amax(-1))).all(), gain.max()


@settings(max_examples=40, deadline=None)
@given(seeds, dims, b0s, st.sampled_from(CLASSES), st.sampled_from(PAYMENTS))
def test_deviation_utilities_match_rerunning_the_step(seed, nv, b0, cls, payment):
    batch, mech = instance(seed, *nv), cls(payment=payment, reference_weight=b0)
    g = torch.Generator().manual_seed(seed + 2)
    true = torch.log_softmax(batch.logp / 0.6 + torch.randn(batch.logp.shape, generator=g, dtype=F64), -1)
    m = torch.rand(batch.bids.shape, generator=g, dtype=F64)
    alt = torch.tensor([0.0, 0.4, 1.3], dtype=F64).expand(*m.shape, 3)
    mask = batch.mask.clone()
    mask[:, 0] = False  # a deviation makes i take part
    batch = dataclasses.replace(batch, mask=mask)
    fast = mech.deviation_utilities(batch, true, m, alt)
    for i in range(nv[0]):
        for k in range(3):
            out = mech.run(with_bid(batch, i, alt[0, 0, k]))
            d = divergence(true[:, i], out.logq, cls.rule)
            assert torch.allclose(fast[:, i, k], -m[:, i] * d - out.payment[:, i], atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(seeds, dims, b0s, st.sampled_from(CLASSES))
def test_vcg_payment_is_the_others_loss_difference(seed, nv, b0, cls):
    # the closed form W_-i D(q_-i, q) against sum_{j != i} w_j (D_j(q) - D_j(q_-i)) literally
    batch, mech = instance(seed, *nv), cls(payment="vcg", reference_weight=b0)
    out = mech.run(batch)
    laws = torch.cat([batch.logp, batch.log_ref[:, None]], 1)
    w = torch.cat([batch.bids, torch.full_like(batch.bids[:, :1], b0)], 1)
    for i in range(nv[0]):
        without = mech.run(dataclasses.replace(batch, mask=batch.mask.index_fill(1, torch.tensor([i]), False)))
        loss = [(w[:, j] * (divergence(laws[:, j], q, cls.rule))) for q in (out.logq, without.logq)
                for j in range(nv[0] + 1) if j != i]
        half = len(loss) // 2
        want = sum(loss[:half]) - sum(loss[half:])
        assert torch.allclose(out.payment[:, i], want, atol=1e-10)
        assert (out.payment[:, i] >= 0).all()


# --- second price by stable sampling ----------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seeds, dims, b0s, st.sampled_from(CLASSES))
def test_second_price_is_the_break_point_of_stable_sampling(seed, nv, b0, cls):
    batch, mech = instance(seed, *nv), cls(payment="second_price", reference_weight=b0)
    out = mech.run(batch)
    for i in range(nv[0]):
        b, c = batch.bids[:, i], out.payment[:, i]
        assert (c >= 0).all() and (c <= b).all()
        at = tokens_over(mech, batch, i, torch.stack([torch.zeros_like(b), c * (1 + 1e-7) + 1e-12,
                                                      (c - 1e-6 * b).clamp(min=0)], -1))
        same_at_zero = at[:, 0] == out.token
        alone = (b0 == 0) & (batch.bids.sum(1) - b == 0)
        assert (c[same_at_zero] == 0).all()
        assert (c[~same_at_zero & ~alone] > 0).all()
        assert (at[:, 1] == out.token).all()  # at the price: the same token
        below = c > 1e-6 * b
        assert (at[below, 2] != out.token[below]).all()  # just below: another one
        if cls is TokenLinear:  # the bids drawing the token form the interval [c, b_i]
            grid = c[:, None] + (b - c)[:, None] * torch.linspace(1e-6, 1, 200, dtype=F64)
            assert (tokens_over(mech, batch, i, grid) == out.token[:, None]).all()
            grid = (c[:, None] * (1 - 1e-6)) * torch.linspace(0, 1, 200, dtype=F64)
            assert (tokens_over(mech, batch, i, grid)[below] != out.token[below, None]).all()


@settings(max_examples=60, deadline=None)
@given(seeds, dims, b0s)
def test_second_price_search_agrees_with_the_linear_closed_form(seed, nv, b0):
    batch = instance(seed, *nv)
    out = TokenLinear(payment="second_price", reference_weight=b0).run(batch)
    laws = torch.cat([batch.logp, batch.log_ref[:, None]], 1)
    w = torch.cat([batch.bids, torch.full_like(batch.bids[:, :1], b0)], 1)
    pooled, total = others(laws, w, "linear")
    found = second_price_search(pooled, total, batch.logp, batch.bids, batch.uniform[:, None],
                                out.token[:, None], batch.log_ref[:, None], "linear")
    assert torch.allclose(found, out.payment, atol=1e-7 * batch.bids.max().item())


def test_a_lone_bidder_pays_zero_under_second_price():
    batch = with_bid(dataclasses.replace(instance(9, 2, 5), mask=torch.zeros(6, 2, dtype=torch.bool)), 1, 1.0)
    for cls in CLASSES:
        out = cls(payment="second_price").run(batch)
        assert torch.allclose(out.logq, batch.logp[:, 1]) and (out.payment == 0).all()


# --- settings, registry, contract -------------------------------------------------------------

def test_kinds_are_registered_and_settings_checked():
    assert MECHANISMS["token_linear"] is TokenLinear and MECHANISMS["token_loglinear"] is TokenLogLinear
    assert get_mechanism("token_loglinear", payment="vcg").rule == "loglinear"
    with pytest.raises(ValueError, match="payment = 'first_price': not one of pay_as_bid, vcg"):
        TokenLinear(payment="first_price")
    for bad in (-1.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match=r"reference_weight = .*: must be a finite number >= 0"):
            TokenLinear(reference_weight=bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_contract_examples(dtype, seed):
    for ex in examples(torch.device("cpu"), dtype, seed):
        check_example(ex)
    assert token_batch("cpu", dtype, seed).logp.dtype == dtype


# --- the reply loop ---------------------------------------------------------------------------

class ChainLM:
    """A first-order Markov chain world for the tests: A advertisers' models and Q queries'
    reference models over V tokens, token 0 the end; advertiser a's brand is token 1 + a % (V-1)."""

    eos = 0

    def __init__(self, V: int = 6, A: int = 5, Q: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        bump = torch.zeros(V)
        bump[0] = 0.5  # ends come soon enough that some replies stop before the limit
        self.V = V
        self.adv = torch.log_softmax(2 * torch.randn(A, V + 1, V, generator=g, dtype=F64) + bump, -1)
        self.ref = torch.log_softmax(2 * torch.randn(Q, V + 1, V, generator=g, dtype=F64) + bump, -1)

    def vocab(self, n):
        return self.V

    def start(self, query, advertisers):
        return query, advertisers, torch.full_like(query, self.V)

    def logprobs(self, state):
        q, a, prev = state
        return torch.cat([self.adv[a, prev[:, None]], self.ref[q, prev][:, None]], 1)

    def advance(self, state, tokens):
        return state[0], state[1], tokens

    def decode(self, tokens, advertisers=None):
        return " ".join(str(int(t)) for t in tokens if 0 < t)

    def mentions(self, tokens, advertisers):
        brand = 1 + advertisers % (self.V - 1)
        return (tokens[:, None, :] == brand[..., None]).any(-1)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("payment", PAYMENTS)
def test_batched_replies_equal_replies_made_alone(cls, payment):
    lm, B, n, L = ChainLM(), 12, 3, 9
    assert isinstance(lm, TokenLM)
    g = torch.Generator().manual_seed(4)
    query, adv = torch.randint(0, 3, (B,), generator=g), torch.randint(0, 5, (B, n), generator=g)
    bids = torch.rand(B, n, generator=g, dtype=F64)
    mask = torch.rand(B, n, generator=g) < 0.8
    uniforms, values = torch.rand(B, L, generator=g, dtype=F64), torch.rand(B, n, generator=g, dtype=F64)
    temp = torch.where(torch.rand(B, n, generator=g) < 0.5, 0.5, 1.0).to(F64)
    mech = cls(payment=payment, reference_weight=0.2)
    r = generate(lm, mech, query, adv, bids, mask, uniforms, values, temp)
    ended = r.length < L
    assert ended.any() and (~ended).any()
    for b in range(B):
        one = generate(lm, mech, query[b:b + 1], adv[b:b + 1], bids[b:b + 1], mask[b:b + 1],
                       uniforms[b:b + 1], values[b:b + 1], temp[b:b + 1])
        assert torch.equal(one.tokens[0], r.tokens[b])
        for f in ("payment", "value", "step_payment", "divergence", "entropy", "reference_divergence"):
            assert torch.allclose(getattr(one, f)[0], getattr(r, f)[b], atol=1e-12), f
        k = int(r.length[b])
        assert (r.tokens[b, :k] >= 0).all() and (r.tokens[b, k:] == -1).all()
        assert (r.tokens[b, :k - 1] != lm.eos).all()
        assert (r.tokens[b, k - 1] == lm.eos) == (k < L)
        assert (r.step_payment[b, k:] == 0).all() and (r.divergence[b, k:] == 0).all()
    assert torch.allclose(r.payment, r.step_payment.sum(1))
    assert torch.allclose(r.value, -(values[:, None] * r.divergence).sum(1))
    assert torch.equal(r.mentions, lm.mentions(r.tokens, adv))
    assert (r.step_payment[~mask[:, None].expand(B, L, n)] == 0).all()
    # step 0: the mechanism sees the tempered reports, the divergences use the true laws
    laws = lm.logprobs(lm.start(query, adv))
    true = laws[:, :n]
    step = mech.run(TokenBatch(torch.log_softmax(true / temp[..., None], -1), bids, mask,
                               laws[:, n], uniforms[:, 0]))
    assert torch.equal(r.tokens[:, 0], step.token)
    assert torch.allclose(r.divergence[:, 0], divergence(true, step.logq[:, None], cls.rule))
    assert torch.allclose(r.step_payment[:, 0], step.payment)


def test_generate_rejects_bad_inputs():
    lm, z = ChainLM(), torch.zeros(2, 3, dtype=F64)
    args = (lm, TokenLinear(), torch.zeros(2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_length = 9: must be in"):
        generate(*args, z, z > 0, torch.rand(2, 4, dtype=F64), max_length=9)
    with pytest.raises(ValueError, match="temperature: every entry must be > 0"):
        generate(*args, z, z > 0, torch.rand(2, 4, dtype=F64), temperature=z)
