"""The token auction's language models: the synthetic chains' next-token laws agree with the text
backend's sequence scores, and the transformers models' cached laws agree with plain forward
passes (every model of every auction, across padding and batching)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket.mechanisms.backends.text.base import AdvertiserProfile, Query, TextWorld
from genmarket.mechanisms.backends.text.hf import HFTextBackend, advertiser_instruction
from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend
from genmarket.mechanisms.backends.text.world import Language
from genmarket.mechanisms.token.hf import HFTokenLM
from genmarket.mechanisms.token.lm import TokenLM
from genmarket.mechanisms.token.lm_build import build_token_lm
from genmarket.mechanisms.token.synthetic import SyntheticTokenLM

WORLD = TextWorld(
    topics=("travel", "food"),
    queries=(Query("Vacations in Hawaii", "travel"),
             Query("Where can I find a quiet beach for a long week in the sun?", "travel"),
             Query("How do I bake cookies?", "food")),
    advertisers=(
        AdvertiserProfile("Alpha Airlines", "an airline flying to Hawaii", {"travel": 0.9}),
        AdvertiserProfile("Beta Resort", "a resort on a Hawaiian beach with a spa and golf",
                          {"travel": 0.8}),
        AdvertiserProfile("DoughJoy", "a bakery chain", {"food": 0.9}),
    ),
)
QUERY = torch.tensor([0, 1, 2, 0])
SLOTS = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


# ----- synthetic -----
def walk(lm, query, advertisers, seed, steps):
    """Draw replies token by token from each auction's reference law; returns tokens [B, steps]
    (-1 after eos) and the summed log-probs [B, n + 1] of the drawn tokens, eos included."""
    g = torch.Generator().manual_seed(seed)
    state = lm.start(query, advertisers)
    total = torch.zeros(len(query), advertisers.shape[1] + 1, dtype=torch.float64)
    tokens = torch.full((len(query), steps), -1)
    for k in range(steps):
        lp = lm.logprobs(state)
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones_like(lp[..., 0]),
                                   atol=1e-12, rtol=0)
        v = torch.multinomial(lp[:, -1].exp(), 1, generator=g)[:, 0]
        live = ~state.done
        total += torch.where(live[:, None], lp.gather(-1, v[:, None, None].expand(-1, lp.shape[1], 1))[..., 0], 0.0)
        tokens[:, k] = torch.where(live & (v != lm.eos), v, -1)
        state = lm.advance(state, v)
    assert state.done.all()
    return tokens, total


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), end_prob=st.sampled_from([0.0, 0.05, 0.3, 0.7]),
       min_length=st.integers(0, 3), length=st.integers(3, 7))
def test_synthetic_laws_sum_to_the_backends_score_up_to_the_end_factor(seed, end_prob,
                                                                      min_length, length):
    backend = SyntheticTextBackend(WORLD, dtype=torch.float64, seed=seed % 7, length=length)
    lm = SyntheticTokenLM(backend, end_prob=end_prob, min_length=min_length)
    assert isinstance(lm, TokenLM) and lm.vocab(3) == 1 + backend.vocab_size(3)
    tokens, total = walk(lm, QUERY, SLOTS, seed, length + 2)
    k = (tokens >= 0).sum(-1)
    assert ((tokens[:, 1:] >= 0) <= (tokens[:, :-1] >= 0)).all()  # -1 only after the reply
    for b in range(len(QUERY)):
        kb = int(k[b])
        assert kb == length or (kb >= min_length and end_prob > 0)
        # the chains do not depend on the reply length: a backend of length k scores k tokens
        short = SyntheticTextBackend(WORLD, dtype=torch.float64, seed=seed % 7, length=max(kb, 1))
        y = lm.backend_tokens(tokens[b, :kb])
        end = (kb - min_length) * math.log1p(-end_prob) + (0.0 if kb == length else
                                                           math.log(end_prob))
        if kb == 0:
            torch.testing.assert_close(total[b], torch.full_like(total[b], end))
            continue
        sc = short.score(y[None, None], QUERY[b:b + 1], SLOTS[b:b + 1], None)
        chain = torch.cat([sc.log_ref[0] + sc.rewards[0, :, 0], sc.log_ref[0]])
        torch.testing.assert_close(total[b], chain + end, atol=1e-11, rtol=0)
        # the end factor cancels from the rewards: the text backend's, exactly in float64
        torch.testing.assert_close(total[b, :-1] - total[b, -1], sc.rewards[0, :, 0],
                                   atol=1e-11, rtol=0)


def test_synthetic_first_laws_are_the_backends_and_eos_ends_replies():
    backend = SyntheticTextBackend(WORLD, dtype=torch.float64, length=6)
    lm = SyntheticTokenLM(backend, end_prob=0.4, min_length=2)
    state = lm.start(QUERY, SLOTS)
    ref, _, pi = backend.next_token_logprobs(QUERY, SLOTS, None, torch.full((4,), -1))
    lp = lm.logprobs(state)
    assert (lp[..., lm.eos] == -math.inf).all()  # min_length = 2: no eos yet
    assert torch.equal(lp[:, :3, 1:], pi) and torch.equal(lp[:, 3, 1:], ref)
    state = lm.advance(lm.advance(state, torch.tensor([1, 2, 3, 4])), torch.tensor([5, 6, 7, 8]))
    lp = lm.logprobs(state)
    torch.testing.assert_close(lp[..., lm.eos].exp(), torch.full((4, 4), 0.4, dtype=torch.float64))
    prev = backend.next_token_logprobs(QUERY, SLOTS, None, torch.tensor([4, 5, 6, 7]))
    torch.testing.assert_close(lp[:, 3, 1:], prev[0] + math.log(0.6))
    state = lm.advance(state, torch.tensor([lm.eos, 9, -1, 10]))
    lp = lm.logprobs(state)
    assert state.done.tolist() == [True, False, True, False]
    assert (lp[[0, 2], :, lm.eos] == 0).all() and (lp[[0, 2], :, 1:] == -math.inf).all()
    for _ in range(3):  # at L = 6 tokens every reply ends
        state = lm.advance(state, torch.tensor([11, 12, 13, 14]))
    assert state.t.tolist() == [2, 6, 2, 6]
    assert (lm.logprobs(state)[..., lm.eos] == 0).all()
    with pytest.raises(ValueError, match="end_prob = 1"):
        SyntheticTokenLM(backend, end_prob=1)
    with pytest.raises(ValueError, match=r"min_length = 7: must be an integer in \[0, 6\]"):
        SyntheticTokenLM(backend, min_length=7)


def test_synthetic_mentions_are_brand_tokens():
    backend = SyntheticTextBackend(WORLD, length=6)
    lm = SyntheticTokenLM(backend)
    S, P1 = backend.shared, 1 + backend.product_words
    brand = [1 + S + i * P1 for i in range(3)]
    product = 1 + S + P1 + 1  # slot 1's first product
    tokens = torch.tensor([[3, brand[1], 4, lm.eos, -1], [product, 2, brand[2], brand[0], -1]])
    got = lm.mentions(tokens, SLOTS[:2])
    assert got.tolist() == [[False, True, False], [True, False, True]]
    text = lm.decode(tokens[0], SLOTS[0])
    assert "Beta Resort" in text and "Alpha" not in text
    assert lm.decode(tokens[1], SLOTS[1]).split()[0] == backend._products[2][0]


# ----- transformers -----
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer Llama (grouped-query attention, rotary positions) and a byte-level BPE
    tokenizer, saved in save_pretrained layout (safetensors)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|end|>", "<|other|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = [q.text for q in WORLD.queries] + [advertiser_instruction(a) for a in WORLD.advertisers]
    tok.train_from_iterator(text * 3 + ["Question: Answer: the a to of and"], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|end|>")
    fast.chat_template = ("<system>You answer questions.\n{% for m in messages %}<{{ m.role }}>"
                          "{{ m.content }}\n{% endfor %}<assistant>")
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=len(fast),
                      max_position_embeddings=256, initializer_range=0.2,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.eos_token_id)
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path, fast


def token_lm(tiny, dtype, length=8, chat=True, shared_prefix=True):
    backend = HFTextBackend(WORLD, model=str(tiny[0]), dtype=dtype, length=length,
                            chat_template=chat)
    return HFTokenLM(backend, shared_prefix=shared_prefix)


def direct(lm, q, advs, prefix):
    """[n + 1, V] log-softmax of the last position of one uncached, unpadded forward pass over
    each model's prompt + prefix."""
    rows = []
    for instr in [advertiser_instruction(WORLD.advertisers[a]) for a in advs] + [None]:
        ids = torch.tensor([lm.backend.prompt_ids(q, instr) + prefix])
        with torch.no_grad():
            rows.append(torch.log_softmax(lm.model(input_ids=ids).logits[0, -1], -1))
    return torch.stack(rows)


@pytest.mark.parametrize("dtype, tol, chat, shared_prefix", [
    (torch.float32, 1e-5, True, True), (torch.float64, 1e-10, True, True),
    (torch.float64, 1e-10, True, False), (torch.float64, 1e-10, False, True)])
def test_cached_laws_equal_a_full_forward_pass(tiny, dtype, tol, chat, shared_prefix):
    """With the chat template every prompt starts with the same head (run once when
    shared_prefix); the plain prompts share no first token."""
    lm = token_lm(tiny, dtype, chat=chat, shared_prefix=shared_prefix)
    assert isinstance(lm, TokenLM) and lm.vocab(3) == len(tiny[1]) and lm.dtype == dtype
    lengths = {len(lm.backend.prompt_ids(q, None)) for q in QUERY.tolist()}
    assert len(lengths) == 3  # the auctions' prompts differ in length: left padding is used
    head = lm.backend.prompt_ids(0, None)[:3]
    assert (lm.backend.prompt_ids(1, advertiser_instruction(WORLD.advertisers[0]))[:3] == head) == chat
    g = torch.Generator().manual_seed(5)
    state, prefix = lm.start(QUERY, SLOTS), [[] for _ in QUERY]
    assert bool(state.mask[:, 0].all()) == (chat and shared_prefix)  # no padding before a head
    for _ in range(4):
        lp = lm.logprobs(state)
        assert lp.shape == (4, 4, lm.vocab(3)) and lp.dtype == dtype
        for b in range(4):
            want = direct(lm, int(QUERY[b]), SLOTS[b].tolist(), prefix[b])
            torch.testing.assert_close(lp[b], want, atol=tol, rtol=0)
        v = torch.randint(2, lm.vocab(3), (4,), generator=g)  # past the two special tokens
        state = lm.advance(state, v)
        for b in range(4):
            prefix[b].append(int(v[b]))


def test_a_batch_of_auctions_equals_each_auction_alone(tiny):
    lm = token_lm(tiny, torch.float64)
    steps = torch.randint(2, lm.vocab(3), (3, 4), generator=torch.Generator().manual_seed(6))
    both = lm.start(QUERY, SLOTS)
    alone = [lm.start(QUERY[b:b + 1], SLOTS[b:b + 1]) for b in range(4)]
    for v in steps:
        for b in range(4):
            torch.testing.assert_close(lm.logprobs(both)[b], lm.logprobs(alone[b])[0],
                                       atol=1e-10, rtol=0)
        both = lm.advance(both, v)
        alone = [lm.advance(s, v[b:b + 1]) for b, s in enumerate(alone)]


def test_eos_folds_every_end_id_and_ends_replies(tiny):
    lm = token_lm(tiny, torch.float64, length=3)
    eos, other = tiny[1].eos_token_id, tiny[1].convert_tokens_to_ids("<|other|>")
    assert lm.eos == eos and lm.end_ids.tolist() == [eos]
    plain = lm.logprobs(lm.start(QUERY, SLOTS))
    lm.end_ids = torch.tensor([eos, other])  # as a model with two end tokens would have
    state = lm.start(QUERY, SLOTS)
    lp = lm.logprobs(state)
    torch.testing.assert_close(lp[..., eos], plain[..., [eos, other]].logsumexp(-1))
    assert (lp[..., other] == -math.inf).all()
    keep = torch.ones(lp.shape[-1], dtype=torch.bool)
    keep[[eos, other]] = False
    assert torch.equal(lp[..., keep], plain[..., keep])
    state = lm.advance(state, torch.tensor([eos, 7, other, -1]))
    assert state.done.tolist() == [True, False, True, True]
    lp = lm.logprobs(state)
    assert (lp[[0, 2, 3], :, eos] == 0).all() and (lp[[0, 2, 3]][..., keep] == -math.inf).all()
    assert (lp[1, :, eos] < 0).all()
    state = lm.advance(lm.advance(state, torch.tensor([eos, 8, eos, eos])), torch.full((4,), 9))
    assert state.t.tolist() == [0, 3, 0, 0] and (lm.logprobs(state)[..., eos] == 0).all()


def test_mentions_search_the_decoded_reply(tiny):
    lm = token_lm(tiny, torch.float32)
    fast = tiny[1]
    ids = [fast(" flying with alpha airlines")["input_ids"] + [lm.eos],
           fast("Beta Resortand DOUGHJOY")["input_ids"]]
    width = max(map(len, ids))
    tokens = torch.tensor([y + [-1] * (width - len(y)) for y in ids])
    assert lm.decode(tokens[0]) == " flying with alpha airlines"
    assert lm.mentions(tokens, SLOTS[:2]).tolist() == [[True, False, False],
                                                        [True, True, False]]


def test_build_token_lm_wraps_the_scenarios_backend(tiny):
    def scenario(**language):
        return SimpleNamespace(language=Language(topics=list(WORLD.topics), **language))

    lm = build_token_lm(scenario(length=5), WORLD, "cpu", torch.float64, end_prob=0.2)
    assert isinstance(lm, SyntheticTokenLM) and lm.end_prob == 0.2 and lm.length == 5
    hf = build_token_lm(scenario(backend="hf", model=str(tiny[0]), length=4), WORLD, "cpu",
                        torch.float32)
    assert isinstance(hf, HFTokenLM) and hf.length == 4
    with pytest.raises(ValueError, match="end_prob: not a setting of the hf token LM"):
        build_token_lm(scenario(backend="hf", model=str(tiny[0])), WORLD, "cpu",
                       torch.float32, end_prob=0.2)
