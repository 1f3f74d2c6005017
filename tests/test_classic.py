"""Classic ad auctions: worked examples, an independent oracle, incentive properties and the
fast deviation path checked against the naive one."""

from __future__ import annotations

import importlib.metadata
import re
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket.mechanisms import (
    GSP,
    MECHANISMS,
    AuctionBatch,
    get_mechanism,
    reference_deviations,
    register_mechanism,
)
from genmarket.mechanisms.classic import auctions as classic

CLASSIC = ["first_price", "second_price", "gsp", "vcg"]
FAST = settings(max_examples=100, deadline=None)


def batch(bids, mask=None, noise=None, dtype=torch.float64) -> AuctionBatch:
    bids = torch.tensor(bids, dtype=dtype)
    if bids.ndim == 1:
        bids = bids.unsqueeze(0)
    mask = torch.ones_like(bids, dtype=torch.bool) if mask is None else torch.tensor(mask)
    if noise is None:
        # Distinct noise, decreasing with the index, so ties go to the lower index.
        noise = torch.linspace(0.9, 0.1, bids.shape[-1], dtype=dtype).expand_as(bids)
    else:
        noise = torch.tensor(noise, dtype=dtype).reshape(bids.shape)
    return AuctionBatch(bids, mask.reshape(bids.shape), noise)


def expect(out, allocation, payment, slot):
    torch.testing.assert_close(out.allocation[0], torch.tensor(allocation, dtype=torch.float64))
    torch.testing.assert_close(out.payment[0], torch.tensor(payment, dtype=torch.float64))
    assert out.slot[0].tolist() == slot


# ---------------------------------------------------------------------------- worked examples


@pytest.mark.parametrize(
    ("name", "reserve", "payment"),
    [
        ("first_price", 0.0, 0.8),
        ("second_price", 0.0, 0.5),
        ("gsp", 0.0, 0.5),
        ("vcg", 0.0, 0.5),
        ("first_price", 0.6, 0.8),
        ("second_price", 0.6, 0.6),  # reserve binds
        ("gsp", 0.6, 0.6),
        ("vcg", 0.6, 0.6),
    ],
)
def test_single_slot_examples(name, reserve, payment):
    out = get_mechanism(name, reserve=reserve).run(batch([0.3, 0.8, 0.5]))
    expect(out, [0.0, 1.0, 0.0], [0.0, payment, 0.0], [-1, 0, -1])


@pytest.mark.parametrize("name", CLASSIC)
def test_reserve_above_every_bid_sells_nothing(name):
    out = get_mechanism(name, reserve=0.9).run(batch([0.3, 0.8, 0.5]))
    expect(out, [0.0] * 3, [0.0] * 3, [-1, -1, -1])


@pytest.mark.parametrize(("name", "payment"), [("first_price", 0.5), ("second_price", 0.3)])
def test_masked_bidder_neither_wins_nor_sets_the_price(name, payment):
    out = get_mechanism(name).run(batch([0.3, 0.8, 0.5], mask=[True, False, True]))
    expect(out, [0.0, 0.0, 1.0], [0.0, 0.0, payment], [-1, -1, 0])


# Five bidders for three slots with ctrs 1, 0.6, 0.3; ranked 1.0 > 0.8 > 0.5 > 0.2 > 0.1,
# so bidders 1, 3, 2 take slots 0, 1, 2 when the reserve lets them.
BIDS_5 = [0.2, 1.0, 0.5, 0.8, 0.1]
CTRS_3 = [1.0, 0.6, 0.3]
THREE_WIN = ([0.0, 1.0, 0.3, 0.6, 0.0], [-1, 0, 2, 1, -1])
TWO_WIN = ([0.0, 1.0, 0.0, 0.6, 0.0], [-1, 0, -1, 1, -1])


@pytest.mark.parametrize(
    ("name", "reserve", "won", "payment"),
    [
        # gsp: c_s * next bid down
        ("gsp", 0.0, THREE_WIN, [0, 0.8, 0.3 * 0.2, 0.6 * 0.5, 0]),
        # vcg: slot 2 = .3*.2; slot 1 = .3*.5 + .3*.2; slot 0 = .4*.8 + .3*.5 + .3*.2
        ("vcg", 0.0, THREE_WIN, [0, 0.53, 0.06, 0.21, 0]),
        ("first_price", 0.0, THREE_WIN, [0, 1.0, 0.3 * 0.5, 0.6 * 0.8, 0]),
        # reserve 0.3: bids 0.2 and 0.1 drop out and the last price rises to the reserve
        ("gsp", 0.3, THREE_WIN, [0, 0.8, 0.3 * 0.3, 0.3, 0]),
        ("vcg", 0.3, THREE_WIN, [0, 0.56, 0.09, 0.24, 0]),
        # reserve 0.6: two bidders clear it; vcg slot 1 = .3*.6 + .3*.6
        ("gsp", 0.6, TWO_WIN, [0, 0.8, 0, 0.36, 0]),
        ("vcg", 0.6, TWO_WIN, [0, 0.68, 0, 0.36, 0]),
        ("first_price", 0.6, TWO_WIN, [0, 1.0, 0, 0.48, 0]),
    ],
)
def test_three_slot_examples(name, reserve, won, payment):
    out = get_mechanism(name, reserve=reserve, ctrs=CTRS_3).run(batch(BIDS_5))
    expect(out, won[0], payment, won[1])


def test_vcg_with_more_slots_than_bidders():
    vcg = get_mechanism("vcg", ctrs=CTRS_3)
    expect(vcg.run(batch([0.7, 0.4])), [1.0, 0.6], [0.4 * 0.4, 0.0], [0, 1])
    vcg = get_mechanism("vcg", ctrs=CTRS_3, reserve=0.1)
    # slot 1 = .3*.1 + .3*.1 (phantom bids at the reserve); slot 0 = .4*.4 + that
    expect(vcg.run(batch([0.7, 0.4])), [1.0, 0.6], [0.22, 0.06], [0, 1])


@pytest.mark.parametrize(
    ("noise", "winner"),
    [([0.1, 0.9, 0.5], 1), ([0.9, 0.1, 0.5], 0), ([0.5, 0.5, 0.1], 0)],  # exact tie: lower index
)
def test_equal_bids_go_to_the_higher_noise(noise, winner):
    out = get_mechanism("second_price").run(batch([0.5, 0.5, 0.2], noise=noise))
    assert out.slot[0].tolist() == [0 if i == winner else -1 for i in range(3)]
    assert out.payment[0, winner].item() == 0.5


def test_gsp_ties_fill_slots_in_noise_order():
    gsp = get_mechanism("gsp", ctrs=[1.0, 0.5])
    out = gsp.run(batch([0.5, 0.5, 0.5], noise=[0.2, 0.7, 0.4]))
    expect(out, [0.0, 1.0, 0.5], [0.0, 0.5, 0.25], [-1, 0, 1])


def test_zero_bids_win_at_zero_reserve_and_pay_nothing():
    out = get_mechanism("second_price").run(batch([0.0, 0.0]))
    expect(out, [1.0, 0.0], [0.0, 0.0], [0, -1])


def test_negative_zero_and_negative_bids_count_as_zero():
    out = get_mechanism("first_price").run(batch([-0.0, -1.0], noise=[0.1, 0.9]))
    expect(out, [0.0, 1.0], [0.0, 0.0], [-1, 0])
    assert not torch.signbit(out.payment).any()


# ------------------------------------------------------------------------------ random instances


@st.composite
def instances(draw, discrete: bool = True, multi_slot: bool = True, signed: bool = False):
    """A random batch, reserve, ctrs and alternative bids; discrete draws make ties likely,
    signed ones add negative bids and -0.0 (both count as 0)."""
    B = draw(st.integers(1, 3))
    n = draw(st.integers(1, 6))
    K = draw(st.integers(1, 4))
    values = (
        st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
        if discrete
        else st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False)
    )
    if signed:
        values = values | st.sampled_from([-0.0, -0.5])
    bids = draw(st.lists(values, min_size=B * n, max_size=B * n))
    alt = draw(st.lists(values, min_size=B * n * K, max_size=B * n * K))
    mask = draw(st.lists(st.booleans(), min_size=B * n, max_size=B * n))
    noise_values = st.sampled_from([0.1, 0.5, 0.9]) if discrete else st.floats(0.0, 0.999)
    noise = draw(st.lists(noise_values, min_size=B * n, max_size=B * n))
    reserve = draw(st.sampled_from([0.0, 0.25, 0.6]) | st.floats(0.0, 1.0))
    S = draw(st.integers(1, 4)) if multi_slot else 1
    ctrs = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=S, max_size=S)), reverse=True)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return dict(
        batch=AuctionBatch(
            torch.tensor(bids, dtype=dtype).reshape(B, n),
            torch.tensor(mask).reshape(B, n),
            torch.tensor(noise, dtype=dtype).reshape(B, n),
        ),
        alt=torch.tensor(alt, dtype=dtype).reshape(B, n, K),
        reserve=reserve,
        ctrs=ctrs,
    )


def build(name: str, inst: dict):
    ctrs = [1.0] if name == "second_price" else inst["ctrs"]
    return get_mechanism(name, reserve=inst["reserve"], ctrs=ctrs)


def oracle(name: str, inst: dict) -> tuple[list, list, list]:
    """Scalar Python reading of the rules in mechanisms/classic/auctions.py's docstring."""
    mech, b = build(name, inst), inst["batch"]
    c, r = list(mech.ctrs), mech.reserve
    S = len(c)
    alloc, pay, slot = [], [], []
    for bids, mask, noise in zip(b.bids.tolist(), b.mask.tolist(), b.noise.tolist(), strict=True):
        n = len(bids)
        bids = [max(x, 0.0) for x in bids]

        def outranks(j, i, bids=bids, noise=noise):
            return bids[j] > bids[i] or (
                bids[j] == bids[i] and (noise[j] > noise[i] or (noise[j] == noise[i] and j < i))
            )

        row_a, row_p, row_s = [0.0] * n, [0.0] * n, [-1] * n
        for i in range(n):
            rho = sum(mask[j] and outranks(j, i) for j in range(n) if j != i)
            if not mask[i] or rho >= S or bids[i] < r:
                continue
            o = sorted((bids[j] for j in range(n) if j != i and mask[j]), reverse=True)
            o += [0.0] * S
            cc = c + [0.0]
            row_a[i], row_s[i] = c[rho], rho
            if name == "first_price":
                row_p[i] = c[rho] * bids[i]
            elif name in ("second_price", "gsp"):
                row_p[i] = c[rho] * max(o[rho], r)
            else:
                row_p[i] = sum((cc[j] - cc[j + 1]) * max(o[j], r) for j in range(rho, S))
        alloc.append(row_a)
        pay.append(row_p)
        slot.append(row_s)
    return alloc, pay, slot


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CLASSIC)
@FAST
@given(inst=instances() | instances(discrete=False) | instances(signed=True))
def test_run_matches_scalar_oracle(name, inst):
    out = build(name, inst).run(inst["batch"])
    alloc, pay, slot = oracle(name, inst)
    dtype = inst["batch"].bids.dtype
    assert out.slot.tolist() == slot
    assert out.allocation.dtype == dtype and out.payment.dtype == dtype
    torch.testing.assert_close(out.allocation, torch.tensor(alloc, dtype=dtype), **tol(dtype))
    torch.testing.assert_close(out.payment, torch.tensor(pay, dtype=dtype), **tol(dtype))


@pytest.mark.parametrize("name", CLASSIC)
@FAST
@given(inst=instances() | instances(discrete=False) | instances(signed=True))
def test_fast_deviations_match_reference(name, inst):
    mech, b = build(name, inst), inst["batch"]
    fast = mech.deviations(b, inst["alt"])
    slow = reference_deviations(mech, b, inst["alt"])
    dtype = b.bids.dtype
    # Allocation is a ctr picked by the slot, so equal slots give bitwise equal allocations.
    assert torch.equal(fast[0], slow[0])
    torch.testing.assert_close(fast[1], slow[1], **tol(dtype))


def on_route(few: bool):
    """Force the few-slot route (podium and broadcasting) or the sorted one (searchsorted)."""
    return mock.patch.dict(classic.FEW_SLOTS, {"cpu": 10**6 if few else 0})


@pytest.mark.parametrize("name", CLASSIC)
@FAST
@given(inst=instances() | instances(discrete=False) | instances(signed=True))
def test_few_slot_and_sorted_routes_agree_exactly(name, inst):
    mech, b, alt = build(name, inst), inst["batch"], inst["alt"]
    results = []
    for few in (True, False):
        with on_route(few):
            out, alloc, pay = mech.run_with_deviations(b, alt)
            sep_out, (sep_alloc, sep_pay) = mech.run(b), mech.deviations(b, alt)
        got = [out.allocation, out.payment, out.slot, alloc, pay]
        sep = [sep_out.allocation, sep_out.payment, sep_out.slot, sep_alloc, sep_pay]
        for x, y in zip(got, sep, strict=True):
            assert torch.equal(x, y)
        assert not torch.signbit(out.payment).any() and not torch.signbit(pay).any()
        results.append(got)
    for x, y in zip(*results, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)


@FAST
@given(inst=instances() | instances(discrete=False))
def test_podium_picks_the_sorted_ranking(inst):
    b = inst["batch"]
    n = b.bids.shape[1]
    bids = b.bids.masked_fill(~b.mask, classic.MASKED)
    ranking = classic.rank(bids, b.noise, n + 1)
    podium = classic.podium(bids.t().contiguous(), b.noise.t().contiguous(), n + 1)
    for got, want in [
        (podium.who[:, 0].t().long(), ranking.top),
        (podium.bid[:, 0].t(), ranking.top_bid),
        (podium.noise[:, 0].t(), ranking.top_noise),
        (podium.first.argmax(1).t(), ranking.top[:, :n]),
    ]:
        assert torch.equal(got, want)


@pytest.mark.parametrize("name", CLASSIC)
@FAST
@given(inst=instances())
def test_deviation_to_own_bid_is_the_actual_outcome(name, inst):
    mech, b = build(name, inst), inst["batch"]
    out = mech.run(b)
    alloc, pay = mech.deviations(b, b.bids.unsqueeze(-1))
    present = b.mask
    assert torch.equal(alloc[..., 0][present], out.allocation[present])
    torch.testing.assert_close(pay[..., 0][present], out.payment[present], **tol(b.bids.dtype))


@FAST
@given(inst=instances(multi_slot=False) | instances(discrete=False, multi_slot=False))
def test_gsp_with_one_slot_is_second_price(inst):
    gsp = get_mechanism("gsp", reserve=inst["reserve"])
    sp = get_mechanism("second_price", reserve=inst["reserve"])
    b = inst["batch"]
    for x, y in zip(gsp.run(b).__dict__.values(), sp.run(b).__dict__.values(), strict=True):
        assert torch.equal(x, y)
    for x, y in zip(gsp.deviations(b, inst["alt"]), sp.deviations(b, inst["alt"]), strict=True):
        assert torch.equal(x, y)


@st.composite
def valuation_profiles(draw, multi_slot: bool):
    inst = draw(instances(multi_slot=multi_slot) | instances(discrete=False, multi_slot=multi_slot))
    b = inst["batch"]
    B, n = b.bids.shape
    dtype = b.bids.dtype
    values = draw(
        st.lists(
            st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0.0, 2.0),
            min_size=B * n,
            max_size=B * n,
        )
    )
    values = torch.tensor(values, dtype=dtype).reshape(B, n)
    # Alternatives: truthful first, then a grid, the others' bids (ties) and random points.
    grid = torch.linspace(0.0, 2.2, 45, dtype=dtype).expand(B, n, -1)
    others = b.bids.unsqueeze(1).expand(B, n, n)
    alt = torch.cat([values.unsqueeze(-1), grid, others, inst["alt"]], dim=-1)
    return inst, values, alt


@pytest.mark.parametrize(("name", "multi_slot"), [("second_price", False), ("vcg", True)])
@FAST
@given(data=st.data())
def test_truthful_bidding_is_weakly_dominant(name, multi_slot, data):
    inst, values, alt = data.draw(valuation_profiles(multi_slot))
    mech = build(name, inst)
    alloc, pay = mech.deviations(inst["batch"], alt)
    utility = values.unsqueeze(-1) * alloc - pay
    truthful = utility[..., 0]
    best = utility.max(dim=-1).values
    assert (truthful >= best - 1e-6).all(), (truthful, best)


def test_gsp_is_not_truthful():
    # Sanity check that the dominance test can fail: with ctrs 1, 0.5 and others at 0.9, 0.2,
    # value 1 earns 1 - 0.9 = 0.1 truthfully but 0.5 * (1 - 0.2) = 0.4 by shading into slot 1.
    gsp = get_mechanism("gsp", ctrs=[1.0, 0.5])
    b = batch([1.0, 0.9, 0.2])
    alloc, pay = gsp.deviations(b, torch.tensor([[[1.0, 0.5]] * 3], dtype=torch.float64))
    utility = 1.0 * alloc[0, 0] - pay[0, 0]
    torch.testing.assert_close(utility, torch.tensor([0.1, 0.4], dtype=torch.float64))


# ---------------------------------------------------------------------------- registry and params


def test_classic_mechanisms_are_registered():
    assert set(CLASSIC) <= set(MECHANISMS)
    for name in CLASSIC:
        mech = get_mechanism(name)
        assert mech.name == name
        assert mech.exact_deviations is True
        assert callable(mech.run_with_deviations)


def test_unknown_mechanism_lists_the_known_names():
    with pytest.raises(ValueError) as err:
        get_mechanism("second_prize")
    message = str(err.value)
    assert message.startswith("unknown mechanism 'second_prize': not one of ")
    listed = message.split("not one of ")[1].split(", ")
    assert listed == sorted(listed)
    assert set(CLASSIC) <= set(listed)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (dict(reserve=-0.1), "reserve"),
        (dict(reserve=float("nan")), "reserve"),
        (dict(reserve=float("inf")), "reserve"),
        (dict(reserve="0.1"), "reserve"),
        (dict(ctrs=[]), "ctrs"),
        (dict(ctrs=[0.5, 0.6]), "ctrs"),
        (dict(ctrs=[1.0, -0.1]), "ctrs[1]"),
        (dict(ctrs=[float("nan")]), "ctrs[0]"),
    ],
)
@pytest.mark.parametrize("name", ["first_price", "gsp", "vcg"])
def test_invalid_params_raise_naming_the_parameter(name, params, field):
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        get_mechanism(name, **params)


def test_second_price_refuses_several_slots():
    with pytest.raises(ValueError, match="gsp or vcg"):
        get_mechanism("second_price", ctrs=[1.0, 0.5])


def test_entry_point_plugins_are_found_and_listed(monkeypatch):
    plugin = importlib.metadata.EntryPoint(
        name="plugged_gsp", value="genmarket.mechanisms.classic:GSP", group="genmarket.mechanisms"
    )

    def entry_points(group):
        return [plugin] if group == "genmarket.mechanisms" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    mech = get_mechanism("plugged_gsp", reserve=0.25)
    assert isinstance(mech, GSP) and mech.reserve == 0.25
    with pytest.raises(ValueError, match="plugged_gsp"):
        get_mechanism("nope")


def test_a_taken_name_cannot_be_registered_again():
    class Impostor:
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_mechanism("gsp")(Impostor)
    assert MECHANISMS["gsp"] is GSP


@pytest.mark.parametrize("name", CLASSIC)
def test_generator_noise_is_drawn_once_and_shared(name):
    # With noise=None, deviations and the reference draw the same uniforms from equal seeds,
    # so they must agree; ties everywhere make the noise decide every slot.
    mech = get_mechanism(name)
    b = AuctionBatch(torch.full((16, 4), 0.5), torch.ones(16, 4, dtype=torch.bool))
    alt = torch.tensor([0.25, 0.5, 0.75]).expand(16, 4, 3)
    fast = mech.deviations(b, alt, torch.Generator().manual_seed(3))
    slow = reference_deviations(mech, b, alt, torch.Generator().manual_seed(3))
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
    out = mech.run(b, torch.Generator().manual_seed(3))
    assert torch.equal(fast[0][..., 1], out.allocation)


def test_unknown_keyword_raises():
    with pytest.raises(TypeError, match="tau"):
        get_mechanism("gsp", tau=1.0)
