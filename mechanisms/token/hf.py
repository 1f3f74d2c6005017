"""Any local transformers causal LM as the token auction's models, with a key/value cache.

One model plays every part, told apart by its prompt, as in the MOSAIC transformers backend
(mechanisms/backends/text/hf.py, whose prompts, loader and prefill this reuses): advertiser i's
model is the base model prompted "Answer the question advertising <name>, <description>." then
the query; the reference model is the base model with the query alone (seed 003's "the base
model prompted with its brief"). The laws are the raw model's (temperature 1, no top-p): the
auction aggregates them.

A batch of B auctions with n slots is B x (n + 1) sequences (row b * (n + 1) + i: slot i, the
last the reference). `start` runs one left-padded prefill over the distinct prompts (an
advertiser's prompt for a query is computed once however many auctions it is in; the tokens all
prompts start with, a chat template's head, once for all) and copies the cache to the rows; `advance` feeds each auction's token to its n + 1 rows in one forward pass
over the cache.

End of reply: `eos` is the tokenizer's eos id (for the chat models of the SmolLM2 family, the
end-of-turn token <|im_end|>); the model's other end ids (generation_config.eos_token_id) are
folded into it, so eos carries the whole end mass and those ids get probability 0. After
`backend.length` tokens the law is eos with probability 1 (the reply is cut there, as the text
backend cuts its replies), and after eos it stays eos.

A reply mentions an advertiser when its decoded text contains the advertiser's name, ignoring
case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genmarket.mechanisms.backends.text.hf import HFTextBackend, advertiser_instruction
from genmarket.mechanisms.backends.text.quiet import quietly

__all__ = ["HFTokenLM", "HFTokenState"]


@dataclass
class HFTokenState:
    """Where B replies stand (n slots, R = B * (n + 1) sequences).

    cache — the model's key/value cache for the R sequences (mutated by `advance`).
    mask [R, P] long — attention mask of prompt and reply so far (0 on left padding).
    pos [R] long — the position of the next token of each sequence.
    logp [B, n + 1, V] — the next-token laws, nats. t [B] long — reply tokens so far (eos not
    counted). done [B] bool — eos drawn.
    """

    cache: Any
    mask: Tensor
    pos: Tensor
    logp: Tensor
    t: Tensor
    done: Tensor


class HFTokenLM:
    """Token-auction models played by the local causal LM of an HF text backend (module
    docstring). backend — an HFTextBackend: its model, tokenizer, chat-template choice, device,
    dtype and reply length L (`backend.length`) are used; laws come out in
    `backend.out_dtype` (float32, or float64 for a float64 model). shared_prefix — run the
    tokens every prompt of a batch starts with (the chat template's head) once in the prefill."""

    def __init__(self, backend: HFTextBackend, *, shared_prefix: bool = True):
        if backend.eos.numel() == 0:
            raise ValueError("hf token LM: the model has no end token (tokenizer.eos_token_id "
                             "and generation_config.eos_token_id are both unset)")
        eos = backend.tokenizer.eos_token_id
        self.eos = int(backend.eos[0]) if eos is None else int(eos)
        self.backend, self.model, self.tokenizer = backend, backend.model, backend.tokenizer
        self.device, self.length, self.dtype = backend.device, backend.length, backend.out_dtype
        self.end_ids, self.shared_prefix = backend.eos, bool(shared_prefix)
        self.V = self.model.get_output_embeddings().weight.shape[0]

    def vocab(self, n: int) -> int:
        """V, the model's output vocabulary (the same for every n)."""
        return self.V

    def _laws(self, logits: Tensor, t: Tensor, done: Tensor) -> Tensor:
        """logits [B, n + 1, V] -> laws [B, n + 1, V] in nats: log-softmax, every end id's mass
        on eos, eos with probability 1 where the reply is done or has L tokens."""
        logp = torch.log_softmax(logits.to(self.dtype), -1)
        end = logp.index_select(-1, self.end_ids).logsumexp(-1)
        logp = logp.index_fill(-1, self.end_ids, -math.inf)
        logp[..., self.eos] = end
        stop = (done | (t >= self.length))[:, None, None]
        delta = torch.full_like(logp[:1, :1], -math.inf)
        delta[..., self.eos] = 0.0
        return torch.where(stop, delta, logp)

    @torch.no_grad()
    @quietly
    def start(self, query: Tensor, advertisers: Tensor) -> HFTokenState:
        """Begin B replies: one prefill of the B x (n + 1) prompts (query [B] long,
        advertisers [B, n] long into the backend's world)."""
        world, B, n = self.backend.world, *advertisers.shape
        if advertisers.numel() and not 0 <= int(advertisers.min()) <= int(
                advertisers.max()) < len(world.advertisers):
            raise ValueError(f"advertisers must index world.advertisers, in [0, "
                             f"{len(world.advertisers)})")
        prompts: list[list[int]] = []
        index: dict[tuple[int, str | None], int] = {}
        which = []
        for q, advs in zip(query.tolist(), advertisers.tolist(), strict=True):
            for instr in [advertiser_instruction(world.advertisers[a]) for a in advs] + [None]:
                if (q, instr) not in index:
                    index[(q, instr)] = len(prompts)
                    prompts.append(self.backend.prompt_ids(q, instr))
                which.append(index[(q, instr)])
        which = torch.tensor(which, dtype=torch.long, device=self.device)
        cache, logits, mask, pos = self.backend.prefill(prompts, which, self.shared_prefix)
        t = torch.zeros(B, dtype=torch.long, device=self.device)
        return HFTokenState(cache, mask, pos, self._laws(logits.view(B, n + 1, -1), t, t.bool()),
                            t, t.bool())

    def logprobs(self, state: HFTokenState) -> Tensor:
        """The next-token laws [B, n + 1, V] (slots in order, then the reference), nats."""
        return state.logp

    @torch.no_grad()
    @quietly
    def advance(self, state: HFTokenState, tokens: Tensor) -> HFTokenState:
        """Append tokens [B] long (an end id or an id < 0 ends the reply) to the n + 1 sequences
        of each auction: one forward pass over the cache, which is updated in place."""
        B, n1, _ = state.logp.shape
        tokens = tokens.to(self.device)
        ended = state.done | (tokens < 0) | torch.isin(tokens, self.end_ids)
        t = state.t + (~ended).long()
        if bool(ended.all()):
            return HFTokenState(state.cache, state.mask, state.pos,
                                self._laws(state.logp, t, ended), t, ended)
        ids = torch.where(tokens < 0, self.backend.pad_id, tokens).repeat_interleave(n1)
        mask = torch.cat([state.mask, torch.ones_like(state.mask[:, :1])], -1)
        out = self.model(input_ids=ids[:, None], attention_mask=mask,
                         position_ids=state.pos[:, None], use_cache=True,
                         **{self.backend._cache: state.cache})
        logits = out.logits[:, -1].view(B, n1, -1)
        return HFTokenState(out[self.backend._cache], mask, state.pos + 1,
                            self._laws(logits, t, ended), t, ended)

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's ids [L] -> text: ids < 0 and end ids dropped, the tokenizer's decoding
        with special tokens skipped (advertisers is not needed)."""
        tokens = tokens.reshape(-1).to(self.device)
        return self.backend.decode(tokens[(tokens >= 0) & ~torch.isin(tokens, self.end_ids)])

    def mentions(self, tokens: Tensor, advertisers: Tensor) -> Tensor:
        """[B, n] bool: the decoded reply b (tokens [B, L], padding < 0) contains the name of
        slot i's advertiser, ignoring case."""
        names = [a.name.casefold() for a in self.backend.world.advertisers]
        texts = [self.decode(y).casefold() for y in tokens]
        rows = [[names[a] in text for a in advs]
                for text, advs in zip(texts, advertisers.tolist(), strict=True)]
        return torch.tensor(rows, dtype=torch.bool, device=tokens.device).view(advertisers.shape)
