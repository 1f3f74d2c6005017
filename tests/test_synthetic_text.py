"""The synthetic text backend: exact sequence log-probabilities against a slow reference built
from the documented formulas, the sampling law, exact partition functions, the reward structure
the MOSAIC paper relies on (Sections 5.2, 5.3.2), determinism and validation."""

import itertools
import re

import numpy as np
import pytest
import torch

from genmarket.mechanisms.backends.text import get_backend
from genmarket.mechanisms.backends.text.base import AdvertiserProfile, Query, TextBackend, TextWorld
from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend

TOPICS = ("baking", "music", "travel")
WORLD = TextWorld(
    TOPICS,
    tuple(Query(f"question {k} about {t}", t) for t in TOPICS for k in range(4)),
    (
        AdvertiserProfile("KitchenFix", "producing kitchen appliances", {"baking": 1.0}),
        AdvertiserProfile("FlourPower", "selling organic flour and mixes", {"baking": 0.8}),
        AdvertiserProfile("MusicMastery", "offering online music lessons", {"music": 1.0}),
        AdvertiserProfile("InstaTune", "selling instruments", {"music": 0.7, "travel": 0.1}),
        AdvertiserProfile("JetAway", "booking cheap flights", {"travel": 1.0}),
        AdvertiserProfile("RoamPack", "selling travel backpacks", {"travel": 0.6}),
    ),
)
TINY = {"general_words": 2, "topic_words": 1, "product_words": 1, "states": 3}


def uniforms(shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def reference_laws(be, q, advs, ctx, prev):
    """pi_ref, pi_gen and [pi_i] over the V tokens after token prev (-1: the start) for one
    auction, built token by token from the formulas of the module docstring."""
    G, W, P1 = be.general_words, be.topic_words, 1 + be.product_words
    S, n = G + len(be.world.topics) * W, len(advs)
    base, noise = be.base_logits.cpu().double().numpy(), be.query_offsets.cpu().double().numpy()
    rel, state_of = be.relevance.cpu().double().numpy(), be.state_of_kind.cpu().numpy()
    topic = be.world.topics.index(be.world.queries[q].topic)

    def kind(v):
        return v if v < S else S + (v - S) % P1

    s = be.states if prev < 0 else state_of[kind(prev)]
    logits = []
    for v in range(S + n * P1):
        logit = base[s, kind(v)]
        if v < S:
            logit += be.query_noise * noise[q, v]
            logit += be.topic_strength if v >= G and (v - G) // W == topic else 0.0
        elif (v - S) % P1 == 0:
            logit += be.brand_logit
        else:
            logit += be.product_logit + be.relevance_strength * rel[advs[(v - S) // P1], topic]
        logits.append(logit)
    p = np.exp(np.array(logits) - max(logits))
    p /= p.sum()

    def retarget(targets):  # {token ids of a set: its target mass}
        raised = {ids: a for ids, a in targets.items() if p[list(ids)].sum() < a}
        out = p * (1 - sum(raised.values())) / (1 - sum(p[list(ids)].sum() for ids in raised))
        for ids, a in raised.items():
            out[list(ids)] = p[list(ids)] * a / p[list(ids)].sum()
        return out

    brand = [(S + i * P1,) for i in range(n)]
    prods = [tuple(range(S + i * P1 + 1, S + (i + 1) * P1)) for i in range(n)]
    adv = [retarget({brand[i]: be.advertiser_brand, prods[i]: be.advertiser_product})
           for i in range(n)]
    part = [i for i in range(n) if ctx is not None and ctx[i]]
    targets = {brand[i]: be.generator_brand / len(part) for i in part}
    targets |= {prods[i]: be.generator_product / len(part) for i in part}
    return p, (retarget(targets) if part else p), adv


def reference_scores(be, q, advs, ctx, reply):
    """log pi_ref, log pi_gen, [log pi_i] of one reply, summed from reference_laws."""
    total, prev = np.zeros(2 + len(advs)), -1
    for v in reply:
        ref, gen, adv = reference_laws(be, q, advs, ctx, prev)
        total += np.log([ref[v], gen[v]] + [a[v] for a in adv])
        prev = v
    return total


def all_replies(be, n):
    return torch.tensor(list(itertools.product(range(be.vocab_size(n)), repeat=be.length)))


def test_sequence_scores_match_the_token_by_token_reference():
    be = SyntheticTextBackend(WORLD, dtype=torch.float64, seed=4)
    query, advs = torch.tensor([1, 6]), torch.tensor([[0, 1, 4], [2, 5, 3]])
    replies = torch.randint(be.vocab_size(3), (2, 5, be.length),
                            generator=torch.Generator().manual_seed(1))
    for context in (None, torch.tensor([[True, False, False], [True, True, True]])):
        got = be.score(replies, query, advs, context)
        for b, j in itertools.product(range(2), range(5)):
            ctx = None if context is None else context[b].tolist()
            want = reference_scores(be, int(query[b]), advs[b].tolist(), ctx, replies[b, j].tolist())
            np.testing.assert_allclose(got.log_ref[b, j], want[0], rtol=1e-10)
            np.testing.assert_allclose(got.log_gen[b, j], want[1], rtol=1e-10)
            np.testing.assert_allclose(got.rewards[b, :, j], want[2:] - want[0], atol=1e-9)
    ref, gen, adv = be.next_token_logprobs(query, advs, context, torch.tensor([-1, 20]))
    want = reference_laws(be, 6, [2, 5, 3], [True] * 3, 20)
    np.testing.assert_allclose(gen[1].exp(), want[1], rtol=1e-10)
    np.testing.assert_allclose(adv[1].exp(), np.stack(want[2]), rtol=1e-10)


def test_float32_scores_close_to_float64():
    query, advs = torch.tensor([0, 5]), torch.tensor([[0, 2], [3, 4]])
    context = torch.tensor([[True, True], [False, True]])
    u = uniforms((2, 64, 12))  # the float32 backend rounds them to float32
    out = [SyntheticTextBackend(WORLD, dtype=d).candidates(query, advs, context, 64, u)
           for d in (torch.float32, torch.float64)]
    assert out[0].log_ref.dtype == torch.float32 and out[1].rewards.dtype == torch.float64
    same = (out[0].tokens == out[1].tokens).all(-1)
    assert same.float().mean() > 0.95  # float rounding may move a rare draw across a boundary
    for f in ("log_ref", "log_gen"):
        np.testing.assert_allclose(getattr(out[0], f)[same], getattr(out[1], f)[same], atol=1e-3)


@pytest.mark.parametrize("context", [None, [True, False], [True, True]])
def test_sampled_replies_follow_exp_log_gen(context):
    be = SyntheticTextBackend(WORLD, dtype=torch.float64, length=2, seed=2, **TINY)
    query, advs = torch.tensor([4]), torch.tensor([[2, 0]])
    ctx = None if context is None else torch.tensor([context])
    N = 40_000
    drawn = be.candidates(query, advs, ctx, N, uniforms((1, N, 2), seed=5))
    V = be.vocab_size(2)
    empirical = torch.bincount(drawn.tokens[0, :, 0] * V + drawn.tokens[0, :, 1], minlength=V * V)
    exact = be.score(all_replies(be, 2)[None], query, advs, ctx)
    law = exact.log_gen[0].exp()
    assert (empirical / N - law).abs().sum() / 2 < 0.03
    if context is not None:  # the test could tell pi_gen from pi_ref
        assert (law - exact.log_ref[0].exp()).abs().sum() / 2 > 0.1


def test_every_law_is_normalised_and_log_partition_is_exact():
    be = SyntheticTextBackend(WORLD, dtype=torch.float64, length=3, **TINY)
    query, advs = torch.tensor([0, 9]), torch.tensor([[0, 4], [5, 1]])
    context = torch.tensor([[True, False], [True, True]])
    replies = all_replies(be, 2)[None].expand(2, -1, -1)
    s = be.score(replies, query, advs, context)
    zero = torch.zeros(2, dtype=torch.float64)
    torch.testing.assert_close(s.log_ref.logsumexp(-1), zero, atol=1e-12, rtol=0)
    torch.testing.assert_close(s.log_gen.logsumexp(-1), zero, atol=1e-12, rtol=0)
    torch.testing.assert_close((s.log_ref[:, None] + s.rewards).logsumexp(-1),
                               torch.zeros(2, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    for weights in ([[1.0, 1.0], [1.0, 1.0]], [[2.5, -0.5], [0.0, 0.7]], [[0.0, 0.0]] * 2):
        w = torch.tensor(weights, dtype=torch.float64)
        brute = (s.log_ref + (w[:, :, None] * s.rewards).sum(1)).logsumexp(-1)
        torch.testing.assert_close(be.log_partition(query, advs, w), brute, atol=1e-10, rtol=0)


def test_reward_structure_of_the_paper():
    """Relevant advertisers gain from the context, an unrelated one loses on the replies it
    produces, and an unrelated participant dilutes the relevant ones' rewards."""
    be = SyntheticTextBackend(WORLD)
    B, M = 12, 256
    query = torch.arange(B)  # 4 queries per topic: baking, music, travel
    advs = torch.tensor([[0, 1, 4]] * 4 + [[2, 3, 0]] * 4 + [[4, 5, 2]] * 4)  # slot 2 unrelated
    u = uniforms((B, M, be.length), dtype=torch.float32)
    relevant = torch.tensor([[True, True, False]] * B)
    own = be.candidates(query, advs, relevant, M, u).rewards
    diluted = be.candidates(query, advs, torch.ones(B, 3, dtype=torch.bool), M, u).rewards
    reference = be.candidates(query, advs, None, M, u).rewards
    assert (own[:, 2] < 0).float().mean() > 0.8  # (a) the outsider's outside option is negative
    assert diluted[:, :2].mean() < own[:, :2].mean() - 1.0  # (b) dilution
    assert own[:, :2].mean() > reference[:, :2].mean() + 3.0  # (c) the context pays
    assert reference[:, 2].mean() < reference[:, :2].mean()  # unrelated: rarer, costlier mentions


def test_same_uniforms_same_candidates_and_score_agrees():
    query, advs = torch.tensor([3, 7, 11]), torch.tensor([[0, 2, 4], [1, 3, 5], [5, 4, 0]])
    context = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    u = uniforms((3, 20, 12), seed=9, dtype=torch.float32)
    for ctx in (None, context):
        first = SyntheticTextBackend(WORLD, seed=7).candidates(query, advs, ctx, 20, u)
        again = get_backend("synthetic", WORLD, seed=7).candidates(query, advs, ctx, 20, u)
        scored = SyntheticTextBackend(WORLD, seed=7).score(first.tokens, query, advs, ctx)
        for f in ("tokens", "log_ref", "log_gen", "rewards"):
            assert torch.equal(getattr(first, f), getattr(again, f))
            assert torch.equal(getattr(first, f), getattr(scored, f))
        assert first.tokens.shape == (3, 20, 12) and first.rewards.shape == (3, 3, 20)
        assert 0 <= first.tokens.min() and first.tokens.max() < 24 + 12 + 3 * 4
    assert torch.equal(first.log_gen[1], first.log_ref[1])  # no participant: pi_gen = pi_ref
    assert not torch.equal(first.log_gen[0], first.log_ref[0])
    other = SyntheticTextBackend(WORLD, seed=8).candidates(query, advs, context, 20, u)
    assert not torch.equal(other.tokens, first.tokens)


def test_backend_contract_and_decode():
    be = get_backend("synthetic", WORLD, length=4)
    assert isinstance(be, SyntheticTextBackend) and isinstance(be, TextBackend)
    S = be.shared
    tokens = torch.tensor([0, S, S + 4 + 2, -1])  # "the", slot 0 brand, slot 1 product 2
    assert be.decode(tokens, torch.tensor([0, 2])) == "the KitchenFix music"
    assert be.decode(tokens) == "the <slot 0 brand> <slot 1 product 2>"
    with pytest.raises(ValueError, match="uniforms shape"):
        be.candidates(torch.tensor([0]), torch.tensor([[0]]), None, 2, torch.rand(1, 3, 4))
    with pytest.raises(ValueError, match="advertisers must index"):
        be.tables(torch.tensor([0]), torch.tensor([[0, -1]]), None)
    with pytest.raises(ValueError, match="tokens must be ids"):
        be.score(torch.full((1, 1, 4), S + 4), torch.tensor([0]), torch.tensor([[0]]), None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_like_on_cpu():
    query, advs = torch.tensor([0, 4]), torch.tensor([[0, 2], [3, 1]])
    context = torch.tensor([[True, True], [True, False]])
    u = uniforms((2, 32, 12), dtype=torch.float64)
    cpu = SyntheticTextBackend(WORLD, dtype=torch.float64)
    gpu = SyntheticTextBackend(WORLD, dtype=torch.float64, device="cuda")
    drawn = gpu.candidates(query.cuda(), advs.cuda(), context.cuda(), 32, u.cuda())
    assert drawn.tokens.device.type == "cuda" and drawn.rewards.device.type == "cuda"
    want = cpu.score(drawn.tokens.cpu(), query, advs, context)
    torch.testing.assert_close(drawn.rewards.cpu(), want.rewards)
    torch.testing.assert_close(drawn.log_gen.cpu(), want.log_gen)
    torch.testing.assert_close(gpu.log_partition(query, advs, torch.ones(2, 2)).cpu(),
                               cpu.log_partition(query, advs, torch.ones(2, 2)))


@pytest.mark.parametrize(("name", "value", "extra"), [
    ("length", 0, {}), ("length", 2.5, {}), ("general_words", 0, {}), ("states", 0, {}),
    ("seed", -1, {}), ("query_noise", -0.1, {}), ("topic_strength", float("nan"), {}),
    ("advertiser_brand", 0.0, {}), ("advertiser_product", 1.0, {}),
    ("generator_brand + generator_product", 0.8, {"generator_product": 0.3}),
    ("dtype", torch.int64, {}), ("device", "no-such-device", {}),
])
def test_bad_parameters_raise_value_error_naming_them(name, value, extra):
    key = name.split(" + ")[0]
    with pytest.raises(ValueError, match="^" + re.escape(name) + " = "):
        SyntheticTextBackend(WORLD, **{key: value}, **extra)


def test_bad_worlds_raise_value_error():
    ad = AdvertiserProfile("A", "a", {"baking": 1.0})
    with pytest.raises(ValueError, match=r"queries\[0\]\.topic = 'cars'"):
        SyntheticTextBackend(TextWorld(("baking",), (Query("q", "cars"),), (ad,)))
    with pytest.raises(ValueError, match=r"relevance\['cars'\]"):
        SyntheticTextBackend(TextWorld(("baking",), (Query("q", "baking"),),
                                       (AdvertiserProfile("B", "b", {"cars": 0.5}),)))
    with pytest.raises(ValueError, match="world.advertisers is empty"):
        SyntheticTextBackend(TextWorld(("baking",), (Query("q", "baking"),), ()))
