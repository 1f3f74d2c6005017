"""Checks every registered mechanism must pass (scikit-learn's check_estimator, for auctions).

Parametrised over MECHANISMS, so a mechanism gets these the day it is registered. Mechanisms
whose `batch_type` is not AuctionBatch need inputs these checks cannot build; they are skipped.
"""

from __future__ import annotations

import pytest
import torch

from mechanisms import MECHANISMS, AuctionBatch, get_mechanism, reference_deviations

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
