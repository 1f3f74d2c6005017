"""Checks every registered mechanism must pass (scikit-learn's check_estimator, for auctions).

Parametrised over MECHANISMS, so a mechanism gets these the day it is registered. Mechanisms
whose `batch_type` is not AuctionBatch are skipped here; test_batch_contract.py holds the checks
every mechanism gets whatever batch it takes.
"""

from __future__ import annotations

import pytest
import torch

from genmarket.mechanisms import MECHANISMS, AuctionBatch, get_mechanism, reference_deviations
from genmarket.mechanisms.base import run_with_deviations, tie_noise

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
DTYPES = [torch.float32, torch.float64]
B, N, K = 64, 5, 3


@pytest.fixture(params=sorted(MECHANISMS))
def mech(request):
    cls = MECHANISMS[request.param]
    batch_type = getattr(cls, "batch_type", AuctionBatch)
    if batch_type is not AuctionBatch:
        pytest.skip(f"{request.param} takes {batch_type.__name__}, not AuctionBatch")
    return get_mechanism(request.param)


def random_batch(device, dtype, seed=0, with_noise=True) -> AuctionBatch:
    g = torch.Generator().manual_seed(seed)
    # Bids on a coarse grid so that ties happen and tie-breaking is exercised.
    bids = torch.randint(0, 5, (B, N), generator=g).to(dtype) / 4
    mask = torch.rand(B, N, generator=g) < 0.8
    noise = torch.rand(B, N, generator=g, dtype=dtype) if with_noise else None
    return AuctionBatch(
        bids.to(device), mask.to(device), None if noise is None else noise.to(device)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shapes_dtypes_device_and_finite_payments(mech, device, dtype):
    batch = random_batch(device, dtype)
    out = mech.run(batch)
    for name, t, want in [
        ("allocation", out.allocation, dtype),
        ("payment", out.payment, dtype),
        ("slot", out.slot, torch.long),
    ]:
        assert t.shape == (B, N), name
        assert t.dtype == want, name
        assert t.device.type == device, name
    assert torch.isfinite(out.payment).all()
    assert torch.isfinite(out.allocation).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_deviations_shapes_and_finiteness(mech, device, dtype):
    batch = random_batch(device, dtype)
    alt = torch.rand(B, N, K, dtype=dtype, device=device)
    alloc, pay = mech.deviations(batch, alt)
    for t in (alloc, pay):
        assert t.shape == (B, N, K)
        assert t.dtype == dtype
        assert t.device.type == device
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_outcome(mech, device):
    batch = random_batch(device, torch.float32, with_noise=False)

    def run(seed):
        return mech.run(batch, torch.Generator(device=device).manual_seed(seed))

    first, again = run(7), run(7)
    for x, y in zip(first.__dict__.values(), again.__dict__.values(), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_masked_out_advertiser_gets_nothing_and_changes_nothing(mech, device):
    batch = random_batch(device, torch.float64)
    out = mech.run(batch)
    masked = ~batch.mask
    assert masked.any()
    assert (out.payment[masked] == 0).all()
    assert (out.allocation[masked] == 0).all()
    assert (out.slot[masked] == -1).all()
    # Give every masked-out advertiser a new, often winning, bid: no one else may notice.
    g = torch.Generator().manual_seed(1)
    other_bids = (torch.rand(B, N, generator=g, dtype=torch.float64) * 3).to(device)
    changed = AuctionBatch(torch.where(masked, other_bids, batch.bids), batch.mask, batch.noise)
    again = mech.run(changed)
    for x, y in zip(out.__dict__.values(), again.__dict__.values(), strict=True):
        assert torch.equal(x, y)
    # Deviations too: a masked-out bid is invisible to the others, and its owner's own
    # deviations replace it anyway.
    alt = torch.rand(B, N, K, dtype=torch.float64, generator=g).to(device)
    for x, y in zip(mech.deviations(batch, alt), mech.deviations(changed, alt), strict=True):
        assert torch.equal(x, y)


def test_exact_deviations_agree_with_reference(mech):
    if not getattr(mech, "exact_deviations", False):
        pytest.skip(f"{mech.name} does not claim exact deviations")
    batch = random_batch("cpu", torch.float64)
    alt = torch.randint(0, 5, (B, N, K), generator=torch.Generator().manual_seed(2)).double() / 4
    fast = mech.deviations(batch, alt)
    slow = reference_deviations(mech, batch, alt)
    for x, y in zip(fast, slow, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def assert_same(joint, separate):
    (out, alloc, pay), (sep_out, sep_alloc, sep_pay) = joint, separate
    for x, y in zip(out.__dict__.values(), sep_out.__dict__.values(), strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert torch.equal(alloc, sep_alloc) and torch.equal(pay, sep_pay)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_run_with_deviations_equals_run_then_deviations(mech, device, dtype):
    batch = random_batch(device, dtype)
    alt = torch.rand(B, N, K, dtype=dtype, generator=torch.Generator().manual_seed(4)).to(device)
    separate = mech.run(batch), *mech.deviations(batch, alt)
    assert_same(run_with_deviations(mech, batch, alt), separate)
    # Without noise the pair draws it once: both halves see the ties a fresh generator with
    # the same seed draws first.
    batch = random_batch(device, dtype, with_noise=False)

    def gen():
        return torch.Generator(device=device).manual_seed(5)

    joint = run_with_deviations(mech, batch, alt, gen())
    fixed = AuctionBatch(batch.bids, batch.mask, tie_noise(batch, gen()))
    assert_same(joint, (mech.run(fixed), *mech.deviations(fixed, alt)))


def test_run_with_deviations_falls_back_to_run_and_deviations(mech):
    class RunAndDeviationsOnly:
        """The mechanism seen through the protocol's two required methods only."""

        def run(self, batch, generator=None):
            return mech.run(batch, generator)

        def deviations(self, batch, alt_bids, generator=None):
            return mech.deviations(batch, alt_bids, generator)

    batch = random_batch("cpu", torch.float64, with_noise=False)
    alt = torch.rand(B, N, K, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    joint = run_with_deviations(mech, batch, alt, torch.Generator().manual_seed(7))
    fallback = run_with_deviations(
        RunAndDeviationsOnly(), batch, alt, torch.Generator().manual_seed(7)
    )
    assert_same(joint, fallback)
