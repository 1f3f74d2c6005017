"""Checks every registered mechanism must pass whatever batch it takes.

`EXAMPLES` builds a random batch for each batch type genmarket knows (AuctionBatch for the
classic auctions, MosaicBatch for MOSAIC) and says how to change one advertiser's input. A
mechanism whose batch type is not listed is skipped with a message naming it: add a builder here
when adding a batch type. The classic-auction specifics (deviations, tie-breaking) are in
test_mechanism_contract.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genmarket.mechanisms import MECHANISMS, AuctionBatch, MosaicBatch, get_mechanism

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device")),
]
B, N, M = 48, 4, 6


def auction_batch(device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    bids = torch.randint(0, 5, (B, N), generator=g).to(dtype) / 4
    mask = torch.rand(B, N, generator=g) < 0.7
    noise = torch.rand(B, N, generator=g, dtype=dtype)
    return AuctionBatch(bids.to(device), mask.to(device), noise.to(device))


def mosaic_batch(device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    rewards = 3 * torch.randn(B, N, M, generator=g, dtype=dtype)
    mask = torch.rand(B, N, generator=g) < 0.7
    log_ref = torch.log_softmax(torch.randn(B, M, generator=g, dtype=dtype), -1)
    log_gen = torch.log_softmax(torch.randn(B, M, generator=g, dtype=dtype), -1)
    noise = torch.rand(B, generator=g, dtype=dtype)
    return MosaicBatch(*(x.to(device) for x in (rewards, mask, log_ref, log_gen, noise)))


def change_auction_input(batch, i, value):
    bids = batch.bids.clone()
    bids[:, i] = value
    return dataclasses.replace(batch, bids=bids)


def change_mosaic_input(batch, i, value):
    rewards = batch.rewards.clone()
    rewards[:, i] = value
    return dataclasses.replace(batch, rewards=rewards)


# batch type -> (random batch builder, "set advertiser i's input to a value")
EXAMPLES = {AuctionBatch: (auction_batch, change_auction_input),
            MosaicBatch: (mosaic_batch, change_mosaic_input)}


@pytest.fixture(params=sorted(MECHANISMS))
def mech(request):
    batch_type = getattr(MECHANISMS[request.param], "batch_type", AuctionBatch)
    if batch_type not in EXAMPLES:
        pytest.skip(f"{request.param} takes {batch_type.__name__}: no example builder here")
    return get_mechanism(request.param)


def example(mech, device="cpu", dtype=torch.float64, seed=0):
    build, change = EXAMPLES[getattr(mech, "batch_type", AuctionBatch)]
    return build(device, dtype, seed), change


def tensors(out) -> dict[str, torch.Tensor]:
    return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_payments_finite_shaped_and_on_the_batch_device(mech, device, dtype):
    batch, _ = example(mech, device, dtype)
    out = mech.run(batch)
    assert out.payment.shape == (B, N) and out.payment.dtype == dtype
    for name, t in tensors(out).items():
        assert t.device.type == device, name
        if t.is_floating_point():
            assert torch.isfinite(t).all(), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_batch_same_outcome(mech, seed):
    batch, _ = example(mech, seed=seed)
    a, b = tensors(mech.run(batch)), tensors(mech.run(batch))
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_absent_advertiser_pays_nothing_and_changes_nothing(mech, seed):
    batch, change = example(mech, seed=seed)
    out = mech.run(batch)
    absent = ~batch.mask
    assert (out.payment[absent] == 0).all()
    for i in range(N):
        rows = absent[:, i]
        if not rows.any():
            continue
        other = tensors(mech.run(change(batch, i, 7.5)))
        for name, t in tensors(out).items():
            assert torch.equal(t[rows], other[name][rows]), (name, i)
