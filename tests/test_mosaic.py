"""MOSAIC (mechanisms/mosaic/mechanism.py): Theorem 5.1, Lemmas 5.2 and 5.3, the offset, invariance to
shifted reports, convergence of the outcome's law to pi_r, the batched deviations against a
naive loop over run(), and numerical stability."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from genmarket.mechanisms import MECHANISMS, get_mechanism
from genmarket.mechanisms.mosaic.mechanism import (
    Mosaic,
    MosaicBatch,
    absent_rewards,
    allocation,
    deviation_utilities,
    others_scores,
    payments,
    sample,
    scores,
    utilities,
)

F64 = torch.float64
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
DTYPES = [torch.float32, torch.float64]


def random_batch(
    B, n, M, seed=0, scale=1.0, p_present=0.7, baseline=False, dtype=F64, device="cpu"
) -> MosaicBatch:
    g = torch.Generator().manual_seed(seed)
    rewards = scale * torch.randn(B, n, M, generator=g, dtype=F64)
    mask = torch.rand(B, n, generator=g) < p_present
    log_ref = torch.log_softmax(2 * torch.randn(B, M, generator=g, dtype=F64), -1)
    log_gen = (
        log_ref
        if baseline
        else torch.log_softmax(2 * torch.randn(B, M, generator=g, dtype=F64), -1)
    )
    noise = torch.rand(B, generator=g, dtype=F64)
    return MosaicBatch(
        rewards.to(device, dtype),
        mask.to(device),
        log_ref.to(device, dtype),
        log_gen.to(device, dtype),
        noise.to(device, dtype),
    )


def truthful(batch, true, tau, offset=True):
    """[B, n, 1]: each advertiser's utility for reporting its true rewards."""
    return deviation_utilities(batch, true, true.unsqueeze(-2), tau, offset)


def assert_no_gain(deviating, truth):
    """Theorem 5.1 up to 1e-6 relative tolerance: deviating [B, n, K] <= truth [B, n, 1]."""
    slack = 1e-6 * truth.abs().clamp(min=1.0)
    worst = (deviating - truth - slack).max()
    assert worst <= 0, f"a report beats truthful by {worst.item():.3g} beyond the tolerance"


# ------------------------------------------------------------------ registry and settings


def test_registered_and_settings_validated():
    assert MECHANISMS["mosaic"] is Mosaic
    mech = get_mechanism("mosaic", tau=0.5, offset=False)
    assert (mech.tau, mech.offset, mech.name, Mosaic.batch_type) == (
        0.5,
        False,
        "mosaic",
        MosaicBatch,
    )
    for bad in [0, -1.0, float("nan"), float("inf"), True, "1"]:
        with pytest.raises(ValueError, match=re.escape(f"tau = {bad!r}")):
            Mosaic(tau=bad)


# ------------------------------------------------------------------ Theorem 5.1

dims = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 7))  # B, n, M
log_tau = st.floats(-1.5, 1.5)  # tau from 0.03 to 30
log_scale = st.floats(-1.0, 1.0)  # rewards of order 0.1 to 10
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=150, deadline=None)
@given(dims, log_tau, log_scale, seeds, st.booleans(), st.booleans())
def test_truthful_beats_random_and_scaled_reports(dims, log_tau, log_scale, seed, offset, base):
    B, n, M = dims
    tau, scale = 10**log_tau, 10**log_scale
    batch = random_batch(B, n, M, seed, scale, baseline=base)
    g = torch.Generator().manual_seed(seed + 1)
    true = scale * torch.randn(B, n, M, generator=g, dtype=F64)  # not the reports in batch
    truth = truthful(batch, true, tau, offset)
    K = 24
    noisy = true.unsqueeze(-2) + scale * torch.logspace(-3, 1, K, dtype=F64)[:, None] * torch.randn(
        B, n, K, M, generator=g, dtype=F64
    )
    wild = 3 * scale * torch.randn(B, n, K, M, generator=g, dtype=F64)
    grid = torch.cat(
        [torch.linspace(-2, 3, 41, dtype=F64), torch.tensor([0.999, 1.001], dtype=F64)]
    )
    scaled = true.unsqueeze(-2) * grid[:, None]
    for alt in (noisy, wild, scaled):
        assert_no_gain(deviation_utilities(batch, true, alt, tau, offset), truth)


def ascend(batch, true, start, tau, offset, steps=300, lr=0.05):
    """Reports [B, n, 1, M]: the best iterate, per advertiser, of Adam on its own utility.

    Adam is not monotone (it can end a few 1e-4 below where it was), so the adversary keeps
    the best report it has seen; that can only make the truthfulness check harder to pass.
    """
    alt = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([alt], lr=lr)
    best = start.clone()
    with torch.no_grad():
        best_u = deviation_utilities(batch, true, start, tau, offset)
    for _ in range(steps):
        opt.zero_grad()
        u = deviation_utilities(batch, true, alt, tau, offset)
        with torch.no_grad():
            better = u > best_u  # [B, n, 1]
            best = torch.where(better.unsqueeze(-1), alt, best)
            best_u = torch.where(better, u, best_u)
        # utilities are separable over (b, i): one sum climbs every advertiser's at once
        (-u.sum()).backward()
        opt.step()
    return best.detach()


@settings(max_examples=10, deadline=None)
@given(dims, log_tau, log_scale, seeds, st.booleans())
# found by CI: Adam ended 3e-4 below its start (the theorem held); kept as a regression case
@example(dims=(1, 2, 6), log_tau=-1.0, log_scale=0.5, seed=49131972, offset=False)
def test_truthful_beats_gradient_ascent(dims, log_tau, log_scale, seed, offset):
    B, n, M = dims
    tau, scale = 10**log_tau, 10**log_scale
    batch = random_batch(B, n, M, seed, scale)
    g = torch.Generator().manual_seed(seed + 1)
    true = scale * torch.randn(B, n, M, generator=g, dtype=F64)
    truth = truthful(batch, true, tau, offset)
    start = 2 * scale * torch.randn(B, n, 1, M, generator=g, dtype=F64)
    found = deviation_utilities(
        batch, true, ascend(batch, true, start, tau, offset, lr=0.05 * scale), tau, offset
    )
    assert_no_gain(found, truth)


def test_gradient_ascent_reaches_the_truthful_utility():
    """The search above has power: where the softmax is not saturated it climbs all the way
    up to the truthful utility (and, by Theorem 5.1, not beyond)."""
    batch = random_batch(3, 4, 7, seed=3)
    true = torch.randn(3, 4, 7, generator=torch.Generator().manual_seed(4), dtype=F64)
    start = 2 * torch.randn(3, 4, 1, 7, generator=torch.Generator().manual_seed(5), dtype=F64)
    truth = truthful(batch, true, 1.0)
    found = deviation_utilities(batch, true, ascend(batch, true, start, 1.0, True, 600), 1.0, True)
    assert (truth - deviation_utilities(batch, true, start, 1.0, True)).max() > 1.0
    gap = truth - found
    assert gap.max() < 1e-3 and gap.min() > -1e-12


def test_a_pay_as_bid_rule_would_fail_the_truthfulness_check():
    """The check has teeth: charging p . r_hat (utility p' . (r - r_hat)) makes shading pay."""
    batch = random_batch(4, 3, 5, seed=3)
    true = batch.rewards.abs() + 1
    beta = others_scores(batch.rewards, batch.mask, batch.log_ref, batch.log_gen, 1.0)
    alt = true.unsqueeze(-2) * torch.tensor([1.0, 0.5], dtype=F64)[:, None]
    p = allocation(alt + beta.unsqueeze(-2))
    u = torch.linalg.vecdot(p, true.unsqueeze(-2) - alt)
    with pytest.raises(AssertionError):
        assert_no_gain(u[..., 1:], u[..., :1])


# ------------------------------------------------------------------ Lemmas 5.2, 5.3, the offset


@pytest.mark.parametrize("tau", [0.01, 1.0, 100.0])
def test_zero_rewards_pay_and_get_exactly_zero(tau):
    batch = random_batch(64, 5, 9, seed=1, scale=10.0)
    rewards = batch.rewards.clone()
    rewards[:, 2] = 0.0
    mask = batch.mask.clone()
    mask[:, 2] = True
    out = Mosaic(tau).run(dataclasses.replace(batch, rewards=rewards, mask=mask))
    assert (out.payment[:, 2] == 0).all() and (out.utility[:, 2] == 0).all()
    # and the same in deviation_utilities: reporting zero when one's rewards are zero
    zero = torch.zeros_like(rewards)
    assert (truthful(batch, zero, tau)[:, :, 0] == 0).all()


@settings(max_examples=100, deadline=None)
@given(dims, log_tau, log_scale, seeds)
def test_nonnegative_rewards_give_nonnegative_utility(dims, log_tau, log_scale, seed):
    B, n, M = dims
    tau = 10**log_tau
    batch = random_batch(B, n, M, seed, scale=10**log_scale)
    g = torch.Generator().manual_seed(seed)
    nonneg = batch.rewards.abs() * (torch.rand(B, n, M, generator=g) < 0.7)  # some exact zeros
    out = Mosaic(tau).run(dataclasses.replace(batch, rewards=nonneg))
    # U = tau * logsumexp(s) + C: allow the rounding of the two terms that cancel, nothing more
    assert (out.utility >= -4e-16 * (1 + out.offset.abs())).all()


def test_without_the_offset_nonnegative_rewards_can_lose():
    """Lemma 5.3 needs the offset: a participant with rewards >= 0 among others who dislike
    every candidate has negative utility without it (here U = tau * logsumexp(s) < 0)."""
    batch = random_batch(8, 3, 6, seed=2)
    rewards = batch.rewards.clone()
    rewards[:, 0] = 0.1
    rewards[:, 1:] = -10.0
    changed = dataclasses.replace(batch, rewards=rewards, mask=torch.ones_like(batch.mask))
    assert (Mosaic(offset=True).run(changed).utility[:, 0] >= 0).all()
    assert (Mosaic(offset=False).run(changed).utility[:, 0] < 0).all()


@pytest.mark.parametrize("tau", [0.05, 1.0, 20.0])
def test_with_the_offset_entering_beats_staying_out_on_the_same_candidates(tau):
    """U_i = tau * log E_{p^-i} exp(r_i / tau) >= E_{p^-i} r_i (Jensen): on fixed candidates the
    offset mechanism never does worse than the outside option; only regenerated candidates can."""
    batch = random_batch(256, 5, 8, seed=14, scale=3.0)
    g = torch.Generator().manual_seed(15)
    true = 3 * torch.randn(256, 5, 8, generator=g, dtype=F64)
    enter = truthful(batch, true, tau)[..., 0]
    stay = absent_rewards(batch, true, tau)
    assert (enter - stay >= -1e-12 * (1 + stay.abs())).all()
    assert (enter - stay > 1e-3).any()


@pytest.mark.parametrize("baseline", [False, True])
def test_payments_with_and_without_offset_differ_by_offset_value(baseline):
    batch = random_batch(128, 6, 10, seed=4, scale=3.0, baseline=baseline)
    tau = 0.7
    on, off = Mosaic(tau, offset=True).run(batch), Mosaic(tau, offset=False).run(batch)
    torch.testing.assert_close(off.payment, on.payment + on.offset_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(off.utility, on.utility - on.offset_value, rtol=1e-12, atol=1e-12)
    assert torch.equal(on.offset_value, off.offset_value)
    assert torch.equal(on.offset, on.offset_value) and (off.offset == 0).all()
    for field in ("allocation", "choice", "scores"):
        assert torch.equal(getattr(on, field), getattr(off, field))
    beta = others_scores(batch.rewards, batch.mask, batch.log_ref, batch.log_gen, tau)
    want = torch.where(batch.mask, -tau * torch.logsumexp(beta, -1), 0.0)
    torch.testing.assert_close(on.offset_value, want, rtol=1e-12, atol=1e-12)
    # without the offset every participant gets the same utility, tau * logsumexp(s)
    same = tau * torch.logsumexp(on.scores, -1, keepdim=True).expand_as(off.utility)
    assert torch.equal(off.utility[batch.mask], same[batch.mask])


# ------------------------------------------------------------------ shifted reports


@pytest.mark.parametrize("offset", [True, False])
def test_shifting_a_report_by_a_constant_changes_no_allocation_or_own_utility(offset):
    tau = 0.5
    batch = random_batch(64, 4, 8, seed=5, scale=2.0, p_present=1.0)
    mech = Mosaic(tau, offset)
    c = torch.linspace(-5.0, 7.0, 64, dtype=F64)
    shifted = batch.rewards.clone()
    shifted[:, 1] += c[:, None]
    a, b = mech.run(batch), mech.run(dataclasses.replace(batch, rewards=shifted))
    torch.testing.assert_close(b.allocation, a.allocation, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(b.payment[:, 1], a.payment[:, 1], rtol=1e-12, atol=1e-12)
    # utility at the reports moves with the reported value; at the true rewards it does not
    torch.testing.assert_close(b.utility[:, 1], a.utility[:, 1] + c, rtol=1e-12, atol=1e-12)
    true = batch.rewards
    alt = true.unsqueeze(-2) + torch.tensor([0.0, -3.0, 0.25, 40.0], dtype=F64)[:, None]
    u = mech.deviation_utilities(batch, true, alt)
    torch.testing.assert_close(u, u[..., :1].expand_as(u), rtol=1e-12, atol=1e-12)
    if offset:  # the others see nothing either
        torch.testing.assert_close(
            b.utility, a.utility + torch.outer(c, torch.eye(4, dtype=F64)[1])
        )
        torch.testing.assert_close(b.payment, a.payment, rtol=1e-12, atol=1e-12)


def test_shifted_reports_give_the_identical_allocation_on_exact_numbers():
    """With dyadic rewards, tau = 1 and an integer shift every sum is exact: bit for bit."""
    g = torch.Generator().manual_seed(6)
    rewards = torch.randint(-40, 40, (32, 3, 8), generator=g).to(F64) / 4
    zero = torch.zeros(32, 8, dtype=F64)
    batch = MosaicBatch(
        rewards,
        torch.ones(32, 3, dtype=torch.bool),
        zero,
        zero,
        torch.rand(32, generator=g, dtype=F64),
    )
    shifted = rewards.clone()
    shifted[:, 0] += 3.0
    a = Mosaic(1.0).run(batch)
    b = Mosaic(1.0).run(dataclasses.replace(batch, rewards=shifted))
    assert torch.equal(a.allocation, b.allocation) and torch.equal(a.choice, b.choice)


# ------------------------------------------------------------------ convergence to pi_r

PI_REF = torch.tensor([0.30, 0.25, 0.20, 0.12, 0.08, 0.05], dtype=F64)
REWARDS = torch.tensor(
    [[1.0, -0.5, 0.0, 1.5, -1.0, 0.5], [-0.5, 0.8, 0.2, 1.0, 0.0, -1.0]], dtype=F64
)  # [n=2 advertisers, 6 outputs]


@pytest.mark.parametrize("generator", ["baseline", "context-aware"])
def test_outcome_law_converges_to_pi_r(generator):
    tau, N = 1.0, 40_000
    pi_r = PI_REF * torch.exp(REWARDS.sum(0) / tau)
    pi_r /= pi_r.sum()
    # the context-aware generator leans toward what the advertisers like, but is not pi_r
    pi_gen = PI_REF if generator == "baseline" else 0.5 * pi_r + 0.5 / 6
    assert not torch.allclose(pi_gen, pi_r)
    g = torch.Generator().manual_seed(11)
    tv, tv_law = [], []
    for M in (1, 4, 16, 64):
        y = torch.multinomial(pi_gen, N * M, replacement=True, generator=g).view(N, M)
        batch = MosaicBatch(
            REWARDS[:, y].permute(1, 0, 2),
            torch.ones(N, 2, dtype=torch.bool),
            PI_REF.log()[y],
            pi_gen.log()[y],
            torch.rand(N, generator=g, dtype=F64),
        )
        out = Mosaic(tau).run(batch)
        chosen = y.gather(1, out.choice[:, None])[:, 0]
        freq = torch.bincount(chosen, minlength=6).to(F64) / N
        tv.append(0.5 * (freq - pi_r).abs().sum().item())
        # the law itself (averaging p over the candidate draws), free of the sampling noise
        law = torch.zeros(N, 6, dtype=F64).scatter_add_(1, y, out.allocation).mean(0)
        tv_law.append(0.5 * (law - pi_r).abs().sum().item())
    assert tv[-1] < tv[0] and tv[-1] < 0.05, tv
    assert tv[0] > 0.2  # M = 1 returns a draw of pi_gen, far from pi_r
    assert all(a > b for a, b in zip(tv_law, tv_law[1:], strict=False)), tv_law


def test_sample_is_the_inverse_cdf():
    p = torch.tensor([[0.25, 0.0, 0.75, 0.0]] * 6, dtype=F64)
    u = torch.tensor([0.0, 0.1, 0.25, 0.26, 0.9, 1 - 2**-53], dtype=F64)
    assert sample(p, u).tolist() == [0, 0, 2, 2, 2, 2]
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    j = sample(probs.expand(100_000, 4), torch.rand(100_000, generator=g, dtype=F64))
    torch.testing.assert_close(torch.bincount(j).to(F64) / 1e5, probs, atol=0.006, rtol=0)


# ------------------------------------------------------------------ batched vs a naive loop


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("offset", [True, False])
def test_deviations_and_absent_rewards_match_a_loop_over_run(device, offset):
    B, n, M, K, tau = 16, 4, 6, 3, 0.8
    batch = random_batch(B, n, M, seed=7, scale=2.0, device=device)
    g = torch.Generator().manual_seed(8)
    true = (2 * torch.randn(B, n, M, generator=g, dtype=F64)).to(device)
    alt = (2 * torch.randn(B, n, K, M, generator=g, dtype=F64)).to(device)
    mech = Mosaic(tau, offset)
    fast = mech.deviation_utilities(batch, true, alt)
    absent = mech.absent_rewards(batch, true)
    assert torch.equal(absent, absent_rewards(batch, true, tau))
    slow = torch.empty_like(fast)
    slow_absent = torch.empty_like(absent)
    for i in range(n):
        mask = batch.mask.clone()
        mask[:, i] = True
        for k in range(K):
            rewards = batch.rewards.clone()
            rewards[:, i] = alt[:, i, k]
            out = mech.run(dataclasses.replace(batch, rewards=rewards, mask=mask))
            slow[:, i, k] = torch.linalg.vecdot(out.allocation, true[:, i]) - out.payment[:, i]
        mask[:, i] = False
        out = mech.run(dataclasses.replace(batch, mask=mask))
        slow_absent[:, i] = torch.linalg.vecdot(out.allocation, true[:, i])
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(absent, slow_absent, rtol=1e-10, atol=1e-10)
    # with the offset, reporting all-zero rewards is worth exactly what staying out is
    if offset:
        zero = mech.deviation_utilities(batch, true, torch.zeros_like(alt[:, :, :1]))
        torch.testing.assert_close(zero[..., 0], absent, rtol=1e-10, atol=1e-10)


def test_run_agrees_with_the_building_blocks():
    tau = 1.3
    batch = random_batch(32, 5, 7, seed=9)
    out = Mosaic(tau, offset=True).run(batch)
    r, mask = batch.rewards, batch.mask
    s = scores(r, mask, batch.log_ref, batch.log_gen, tau)
    beta = others_scores(r, mask, batch.log_ref, batch.log_gen, tau)
    torch.testing.assert_close(out.scores, s)
    torch.testing.assert_close(beta[mask], (s.unsqueeze(1) - r / tau)[mask])
    torch.testing.assert_close(beta[~mask], s.unsqueeze(1).expand_as(beta)[~mask])
    p = allocation(s)
    c = -tau * torch.logsumexp(beta, -1)
    pay = payments(p.unsqueeze(1), r, beta, tau, c)
    u = utilities(r, beta, tau, c)
    torch.testing.assert_close(out.payment, torch.where(mask, pay, 0.0))
    torch.testing.assert_close(out.utility, torch.where(mask, u, 0.0))
    torch.testing.assert_close(out.utility, torch.where(mask, truthful(batch, r, tau)[..., 0], 0.0))


# ------------------------------------------------------------------ stability


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tau", [1e-2, 1.0, 1e2])
@pytest.mark.parametrize("offset", [True, False])
def test_extreme_rewards_stay_finite(device, dtype, tau, offset):
    B, n, M = 64, 5, 12
    batch = random_batch(B, n, M, seed=10, scale=1.0, device=device, dtype=dtype)
    sign = torch.where(batch.rewards > 0, 1.0, -1.0).to(dtype)
    batch = dataclasses.replace(batch, rewards=1e4 * sign)  # every reward +-1e4
    mech = Mosaic(tau, offset)
    out = mech.run(batch)
    for name, t in vars(out).items():
        assert t.device.type == device, name
        if name != "choice":
            assert t.dtype == dtype, name
            assert torch.isfinite(t).all(), name
    torch.testing.assert_close(out.allocation.sum(-1), torch.ones(B, dtype=dtype, device=device))
    assert ((out.choice >= 0) & (out.choice < M)).all()
    assert (out.allocation.gather(1, out.choice[:, None]) > 0).all()
    alt = (
        batch.rewards.unsqueeze(-2)
        * torch.tensor([0.0, 0.5, 1.0, -1.0], dtype=dtype, device=device)[:, None]
    )
    dev = mech.deviation_utilities(batch, batch.rewards, alt)
    assert (
        torch.isfinite(dev).all()
        and torch.isfinite(mech.absent_rewards(batch, batch.rewards)).all()
    )
    # truthful (k = 2) still wins, up to float resolution at this scale
    eps = torch.finfo(dtype).eps * 1e4 * n * 8
    assert (dev <= dev[..., 2:3] + eps).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_picks_valid_reproducible_choices(device, dtype):
    B, M = 256, 9
    batch = random_batch(B, 3, M, seed=12, scale=30.0, device=device, dtype=dtype)
    mech = Mosaic(0.1)
    below_one = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype))
    for u in (0.0, 0.5, below_one.item()):
        noise = torch.full((B,), u, dtype=dtype, device=device)
        out = mech.run(dataclasses.replace(batch, noise=noise))
        assert ((out.choice >= 0) & (out.choice < M)).all()
        assert (out.allocation.gather(1, out.choice[:, None]) > 0).all()
    assert torch.equal(mech.run(batch).choice, mech.run(batch).choice)
    drawn = dataclasses.replace(batch, noise=None)
    seeded = [mech.run(drawn, torch.Generator(device=device).manual_seed(3)) for _ in range(2)]
    assert torch.equal(seeded[0].choice, seeded[1].choice)
    assert seeded[0].choice.shape == (B,) and seeded[0].choice.dtype == torch.long


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("offset", [True, False])
def test_a_non_participant_pays_nothing_and_changes_nothing(device, offset):
    batch = random_batch(128, 5, 8, seed=13, scale=2.0, device=device)
    mech = Mosaic(0.6, offset)
    out = mech.run(batch)
    out_mask = ~batch.mask
    assert out_mask.any()
    for name in ("payment", "utility", "offset", "offset_value"):
        assert (getattr(out, name)[out_mask] == 0).all(), name
    junk = torch.where(out_mask.unsqueeze(-1), 1e4 * torch.randn_like(batch.rewards), batch.rewards)
    junk = torch.where(out_mask.unsqueeze(-1) & (torch.rand_like(junk) < 0.1), float("nan"), junk)
    again = mech.run(dataclasses.replace(batch, rewards=junk))
    for name, t in vars(out).items():
        assert torch.equal(t, getattr(again, name)), name
    true = torch.randn_like(batch.rewards)
    alt = torch.randn(128, 5, 2, 8, dtype=F64, device=device)
    assert torch.equal(
        mech.deviation_utilities(batch, true, alt),
        mech.deviation_utilities(dataclasses.replace(batch, rewards=junk), true, alt),
    )


# ------------------------------------------------------------------ benchmark script


def test_bench_mosaic_runs_at_a_small_size():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_mosaic import HEADER, mechanism_rows

    for dtype in DTYPES:
        rows = mechanism_rows("cpu", reps=1, naive_auctions=2, B=16, n=3, M=5, K=4, dtype=dtype)
        assert len(rows) == 3 and all(r.count("|") == HEADER[0].count("|") for r in rows)
