"""The diffusion image auction (SPEC section 3): the score composition (closed form against the
paper's recursion and its two-advertiser formula), the exact concept-space backend (score against
autograd, bid monotonicity), payments, the regret of truthful bidding against k, and the public
contract checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket.mechanisms import MECHANISMS
from genmarket.mechanisms.backends.image import ImageBackend, ImageWorld, get_backend
from genmarket.mechanisms.contract import check_example
from genmarket.mechanisms.diffusion import (
    Diffusion,
    DiffusionBatch,
    DiffusionSingleWinner,
    SingleWinnerBatch,
    closed_form,
    composition,
    examples,
    recursion,
    regret,
    run_auction,
)

# the paper's Table 1: five base prompts, two advertisers each
BASES = ("A hiker resting on a mountain trail",
         "A professional working at a desk in a bright office", "A swimming pool outdoors",
         "Friends gathered for a movie night at home",
         "A car driving along a scenic coastal highway")
ADVERTISERS = ("North Face backpack", "Gatorade bottle", "Dell monitor", "Deer Park water bottle",
               "Marriott Bonvoy hotel", "Ray-Ban sunglasses", "Doritos chips", "Coca-Cola cans",
               "Tesla car", "ExxonMobil sign")
WORLD = ImageWorld(BASES, ADVERTISERS)

bid = st.one_of(st.just(0.0), st.floats(0.0, 10.0), st.sampled_from([0.5, 1.0, 2.0]))


@st.composite
def bid_rows(draw):
    n = draw(st.integers(1, 6))
    bids = draw(st.lists(bid, min_size=n, max_size=n))
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return (torch.tensor([bids], dtype=torch.float64), torch.tensor([mask]))


# -- composition ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(bid_rows())
def test_closed_form_equals_the_recursion(row):
    bids, mask = row
    w_closed, w_rec = closed_form(bids, mask), recursion(bids, mask)
    assert torch.allclose(w_closed, w_rec, atol=1e-12)
    assert torch.allclose(w_closed.sum(-1), torch.ones(1, dtype=torch.float64))
    assert (w_closed >= 0).all()
    weights, sets = composition(bids, mask)
    positive = (bids > 0) & mask
    # a zero bid or an absent slot is in no conditioning; a conditioning with weight holds
    # exactly the top-j positive bids
    assert not (sets & ~positive.unsqueeze(1)).any()
    j = torch.arange(bids.shape[1] + 1)
    assert (sets[0].sum(-1) == torch.minimum(j, positive.sum())).all()


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 10.0), st.floats(0.0, 10.0))
def test_two_advertisers_follow_eq_3(b1, b2):
    bids = torch.tensor([[b1, b2]], dtype=torch.float64)
    weights, sets = composition(bids, torch.ones(1, 2, dtype=torch.bool))
    hi, lo = max(b1, b2), min(b1, b2)
    if hi == 0:
        assert weights.tolist() == [[1.0, 0.0, 0.0]]
        return
    w = 2 * hi / (hi + lo) - 1
    assert torch.allclose(weights, torch.tensor([[0.0, w, 1 - w]], dtype=torch.float64))
    top = 0 if b1 >= b2 else 1
    assert sets[0, 1].tolist() == [top == 0, top == 1]


def test_edge_cases():
    mask = torch.ones(4, 2, dtype=torch.bool)
    bids = torch.tensor([[0.7, 0.7], [0.0, 0.4], [0.3, 0.0], [0.0, 0.0]])
    weights, sets = composition(bids, mask)
    assert weights.tolist() == [[0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert sets[0, 2].tolist() == [True, True]          # equal bids: the joint prompt alone
    assert sets[1, 1].tolist() == [False, True]         # one zero bid: the other's prompt alone
    assert sets[2, 1].tolist() == [True, False]
    assert not sets[3].any()                            # all zero: the base prompt alone
    # an absent slot counts as a zero bid whatever it bid
    absent = composition(torch.tensor([[0.3, 5.0]]), torch.tensor([[True, False]]))
    assert absent[0].tolist() == [[0, 1, 0]] and absent[1][0, 1].tolist() == [True, False]


@pytest.mark.parametrize("n", [3, 4, 6])
def test_equal_bids_for_more_than_two_follow_the_paper(n):
    """Appendix F as written: n equal bids weigh the joint prompt of the top j by
    2 (j - 1) / (n (n - 1)) (the module docstring), not the joint prompt of all n alone."""
    weights = closed_form(torch.ones(1, n, dtype=torch.float64), torch.ones(1, n, dtype=torch.bool))
    want = [0.0, 0.0] + [2 * (j - 1) / (n * (n - 1)) for j in range(2, n + 1)]
    assert torch.allclose(weights[0], torch.tensor(want, dtype=torch.float64))


def test_unknown_method_is_one_clear_error():
    with pytest.raises(ValueError, match="composition method = 'eq7'"):
        composition(torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool), "eq7")


# -- the concept backend ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def concept():
    return get_backend("concept", WORLD)


def test_concept_backend_is_an_image_backend(concept):
    assert isinstance(concept, ImageBackend)
    png = concept.to_png(torch.randn(concept.shape))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sigma", [0.05, 0.7, 4.0, 20.0])
def test_concept_score_is_the_gradient_of_the_exact_log_density(sigma):
    be = get_backend("concept", WORLD, dtype=torch.float64, modes=3)
    g = torch.Generator().manual_seed(1)
    base, adv = torch.tensor([0, 3]), torch.tensor([[0, 1], [6, 7]])
    sets = torch.tensor([[[False, False], [True, False], [True, True]]] * 2)
    mu = be.means(base, adv, sets)
    # points near the data at this noise level, so every mode's responsibility is exercised
    z = (mu[:, :, :1].mean(1) + sigma * torch.randn(2, 5, be.shape[0], generator=g,
                                                    dtype=torch.float64)).requires_grad_()
    logp = be.log_density(z, sigma, mu)
    (grad,) = torch.autograd.grad(logp.sum(), z, retain_graph=True)
    eps = be.eps(z.detach(), sigma, mu)  # [B, k, J, d]
    for j in range(3):
        (grad_j,) = torch.autograd.grad(logp[:, :, j].sum(), z, retain_graph=True)
        assert torch.allclose(-sigma * grad_j, eps[:, :, j], atol=1e-9, rtol=1e-7)
    assert torch.allclose(grad, -eps.sum(2) / sigma, atol=1e-9, rtol=1e-7)


def test_concept_settings_are_validated():
    for kw, field in [({"modes": 0}, "modes = 0"), ({"steps": 0}, "steps = 0"),
                      ({"dim": 5}, "dim = 5"), ({"variety": 1.0}, "variety = 1.0"),
                      ({"sigma_max": 0.01}, "sigma_max = 0.01"), ({"data_std": 0}, "data_std = 0"),
                      ({"dtype": torch.int64}, "dtype = torch.int64")]:
        with pytest.raises(ValueError, match=field):
            get_backend("concept", WORLD, **kw)
    with pytest.raises(ValueError, match="concept"):
        get_backend("concpt", WORLD)


def _grid(P=5, k=8, seed=0, b2=(0.0, 0.25, 0.5, 0.75, 1.0)):
    """The paper's grid: advertiser 1 of each base prompt bids on 0.1 steps, advertiser 2 on
    `b2`; the same noise for every bid of a prompt."""
    b1 = torch.arange(11) / 10
    b2 = torch.tensor(b2)
    p, i, j = torch.meshgrid(torch.arange(P), torch.arange(11), torch.arange(len(b2)),
                             indexing="ij")
    p, i, j = p.reshape(-1), i.reshape(-1), j.reshape(-1)
    bids = torch.stack([b1[i], b2[j]], -1)
    advertisers = torch.stack([2 * p, 2 * p + 1], -1)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(P, k, 5 + 10 + 1 + 16, generator=g)[p]
    return p, advertisers, bids, torch.ones_like(bids, dtype=torch.bool), noise


def test_alignment_rises_with_own_bid(concept):
    p, adv, bids, mask, noise = _grid(k=8, b2=(0.5,))
    run = run_auction(concept, p, adv, bids, mask, noise, baseline=False)
    mean_alignment = run.batch.alignment[..., 0].mean(-1).view(5, 11).mean(0)
    assert (mean_alignment.diff() > 0).all(), mean_alignment
    # and the other's alignment falls as advertiser 1 outbids it
    other = run.batch.alignment[..., 1].mean(-1).view(5, 11).mean(0)
    assert other[-1] < other[5] < other[0] + 1e-6


# -- payments ---------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 6))
def test_exact_vcg_payments_are_within_zero_and_the_contribution(seed, n, k):
    """When the re-runs draw the same images as the full run (VCG over one fixed set, alignments
    >= 0) the raw payment is in [0, b_i alpha_i(kept image)]: no clamp needed."""
    g = torch.Generator().manual_seed(seed)
    B = 16
    alignment = torch.rand(B, k, n, generator=g, dtype=torch.float64)
    bids = torch.rand(B, n, generator=g, dtype=torch.float64)
    mask = torch.rand(B, n, generator=g) < 0.8
    loo = alignment.unsqueeze(1).expand(-1, n, -1, -1)
    out = Diffusion(clamp=False).run(DiffusionBatch(alignment, loo, bids, mask))
    contribution = bids * out.alignment
    assert (out.payment_raw >= -1e-12).all()
    assert (out.payment_raw <= contribution + 1e-12).all()
    assert torch.equal(out.payment, out.payment_raw)


def test_worked_examples():
    bids, mask = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2, dtype=torch.bool)
    # baseline, k = 1: prompt 1's image (0.8, 0.1), prompt 2's (0.1, 0.6); welfare 0.9 vs 0.7
    single = torch.tensor([[[[0.8, 0.1]], [[0.1, 0.6]]]])
    out = DiffusionSingleWinner().run(SingleWinnerBatch(single, bids, mask))
    assert out.chosen.tolist() == [0]
    assert torch.allclose(out.payment, torch.tensor([[0.5, 0.0]]))  # 0.6 - 0.1, 0.8 - 0.8
    # composed, k = 2: the kept image (0.5, 0.5); without 1 the best for 2 is 0.6, without 2
    # the best for 1 is 0.3: raw payments 0.1 and -0.2, the latter clamped to 0
    alignment = torch.tensor([[[0.5, 0.5], [0.2, 0.2]]])
    loo = torch.tensor([[[[0.0, 0.6], [0.0, 0.4]], [[0.3, 0.0], [0.1, 0.0]]]])
    out = Diffusion().run(DiffusionBatch(alignment, loo, bids, mask))
    assert out.chosen.tolist() == [0]
    assert torch.allclose(out.payment_raw, torch.tensor([[0.1, -0.2]]))
    assert torch.allclose(out.payment, torch.tensor([[0.1, 0.0]]))


def _regret(concept, k: int, seeds=(0, 1, 2)) -> tuple[float, float, float]:
    """Advertiser 1's regret of truthful bidding over the paper's grid: true values m_1 in
    0.1..1.0, advertiser 2 truthful at m_2 in 0..1 (0.25 steps), bids on the 0.1 grid, the same
    noise for every bid. Returns (mean regret, median regret, mean |best bid - m_1|)."""
    regrets, distances = [], []
    m1 = torch.arange(1, 11, dtype=torch.float64) / 10
    for seed in seeds:
        p, adv, bids, mask, noise = _grid(k=k, seed=seed)
        out = run_auction(concept, p, adv, bids.double(), mask, noise, baseline=False).outcome
        a = out.alignment[:, 0].view(5, 11, 5).transpose(1, 2).unsqueeze(1)   # [P, 1, m2, b1]
        pay = out.payment[:, 0].view(5, 11, 5).transpose(1, 2).unsqueeze(1)
        u = m1.view(1, 10, 1, 1) * a - pay                                     # [P, m1, m2, b1]
        truthful = torch.arange(1, 11).view(1, 10, 1).expand(5, 10, 5)
        r, best = regret(u, truthful)
        regrets.append(r)
        distances.append((best / 10 - m1.view(1, 10, 1)).abs())
    r = torch.stack(regrets)
    return torch.nanmean(r).item(), torch.nanmedian(r).item(), torch.stack(distances).mean().item()


def test_regret_of_truthful_bidding_falls_with_k(concept):
    small, large = _regret(concept, 5), _regret(concept, 50)
    assert large[0] < small[0], (small, large)
    assert large[1] < small[1], (small, large)


def test_clamped_payments_on_the_concept_backend(concept):
    p, adv, bids, mask, noise = _grid(k=5)
    run = run_auction(concept, p, adv, bids, mask, noise)
    for out in (run.outcome, run.baseline):
        contribution = bids * out.alignment
        assert (out.payment >= 0).all() and (out.payment <= contribution.clamp_min(0)).all()
        assert torch.equal(out.payment == 0, (out.payment_raw <= 0) | (contribution <= 0))
    # what the baseline keeps is one of its prompts' images, by bid-welfare
    assert run.baseline.welfare.shape == (len(p),) and torch.isfinite(run.baseline_quality).all()
    assert ((run.quality > 0) & (run.quality <= 1)).all()


def test_one_batched_call_equals_separate_runs(concept):
    p, adv, bids, mask, noise = _grid(P=2, k=3, b2=(0.25,))
    together = run_auction(concept, p, adv, bids, mask, noise)
    apart = run_auction(concept, p, adv, bids, mask, noise, rows_per_call=5)
    assert torch.allclose(together.batch.alignment, apart.batch.alignment, atol=1e-5)
    assert torch.allclose(together.outcome.payment, apart.outcome.payment, atol=1e-5)


# -- contract ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_contract(dtype, seed):
    for example in examples(torch.device("cpu"), dtype, seed):
        check_example(example)


def test_kinds_are_registered():
    assert MECHANISMS["diffusion"] is Diffusion
    assert MECHANISMS["diffusion_single_winner"] is DiffusionSingleWinner
    assert math.isclose(Diffusion().clamp, True)
