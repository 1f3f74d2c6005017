"""The batched reply loop of the token auction: B replies built token by token at once.

Each step reads every model's next-token law from the language models (`lm.TokenLM`), lets the
advertisers report (truthfully, or their law at a temperature), runs one step of the mechanism
for all B auctions, and appends the drawn token. A reply ends with the end token `lm.eos`
(included) or after L tokens; after its end a reply's tokens are -1 and it pays and accrues
nothing. Shapes stay static and nothing in the loop reads a tensor's value back, except one
check per step that stops once every reply has ended (it changes no result).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genmarket.mechanisms.token.aggregate import divergence
from genmarket.mechanisms.token.lm import TokenLM
from genmarket.mechanisms.token.mechanism import TokenAuction, TokenBatch

__all__ = ["Reply", "generate"]


@dataclass(frozen=True)
class Reply:
    """B replies of the token auction, L = the length limit, n slots. Per-step fields are 0 after
    a reply's end.

    tokens       [B, L] long — token ids, -1 after the end (the end token is included).
    length       [B] long — tokens in the reply, end token included.
    payment      [B, n] — money paid over the reply, sum of step_payment.
    value        [B, n] | None — -sum_t m_i D_i(q_t), money, with the TRUE laws p_i (every slot,
                 absent ones too: what the reply costs them); None when no values were given.
    step_payment [B, L, n] — money paid at each step.
    divergence   [B, L, n] — D_i(q_t) with the true law p_i, nats (capped, see `aggregate`).
    entropy      [B, L] — entropy of the aggregate q_t, nats.
    reference_divergence [B, L] — KL(q_t || reference law) at step t, nats (capped); summed over
                 a reply, an unbiased estimate of KL(reply law || reference reply law).
    mentions     [B, n] bool — whether the reply names each slot's advertiser (`lm.mentions`).
    """

    tokens: Tensor
    length: Tensor
    payment: Tensor
    value: Tensor | None
    step_payment: Tensor
    divergence: Tensor
    entropy: Tensor
    reference_divergence: Tensor
    mentions: Tensor


def _check(bids: Tensor, mask: Tensor, uniforms: Tensor, temperature: Tensor | None,
           max_length: int | None) -> int:
    if bids.shape != mask.shape or bids.dim() != 2:
        raise ValueError(f"bids shape {tuple(bids.shape)} and mask shape {tuple(mask.shape)}: "
                         "must both be (B, n)")
    if uniforms.dim() != 2 or uniforms.shape[0] != bids.shape[0]:
        raise ValueError(f"uniforms shape {tuple(uniforms.shape)}: must be (B, L) with "
                         f"B = {bids.shape[0]}")
    L = uniforms.shape[1] if max_length is None else max_length
    if not 1 <= L <= uniforms.shape[1]:
        raise ValueError(f"max_length = {max_length!r}: must be in [1, {uniforms.shape[1]}], "
                         "the uniforms' width")
    if temperature is not None and not bool((temperature > 0).all()):
        raise ValueError("temperature: every entry must be > 0 (< 1 sharpens, > 1 flattens)")
    return L


def generate(lm: TokenLM, mechanism: TokenAuction, query: Tensor, advertisers: Tensor,
             bids: Tensor, mask: Tensor, uniforms: Tensor, values: Tensor | None = None,
             temperature: Tensor | None = None, max_length: int | None = None) -> Reply:
    """Build B replies by the token auction, one mechanism step per token for all at once.

    query [B] long and advertisers [B, n] long index the language models' world (`lm.start`);
    bids [B, n] money per nat of divergence, mask [B, n] bool who takes part; uniforms [B, L']
    the stable-sampling uniform of each step (L' >= L); values [B, n] m_i, money per nat, for
    `Reply.value`; temperature [B, n] > 0 the temperature at which each advertiser reports its
    law (log_softmax(log p_i / temperature): < 1 sharpened, > 1 flattened), None truthful;
    max_length L, by default L'. Works in the bids' dtype and device. Returns a `Reply`.
    """
    L = _check(bids, mask, uniforms, temperature, max_length)
    B, n = bids.shape
    dtype, device = bids.dtype, bids.device
    tokens = torch.full((B, L), -1, dtype=torch.long, device=device)
    step_payment = torch.zeros(B, L, n, dtype=dtype, device=device)
    div = torch.zeros(B, L, n, dtype=dtype, device=device)
    ent = torch.zeros(B, L, dtype=dtype, device=device)
    ref_div = torch.zeros(B, L, dtype=dtype, device=device)
    uniforms = uniforms.to(dtype)
    alive = torch.ones(B, dtype=torch.bool, device=device)
    state = lm.start(query, advertisers)
    for t in range(L):
        logp = lm.logprobs(state).to(dtype)
        true, log_ref = logp[:, :n], logp[:, n]
        report = true
        if temperature is not None:
            report = torch.log_softmax(true / temperature.unsqueeze(-1).to(dtype), -1)
        out = mechanism.run(TokenBatch(report, bids, mask, log_ref, uniforms[:, t]))
        keep = alive.unsqueeze(-1)
        tokens[:, t] = torch.where(alive, out.token, -1)
        step_payment[:, t] = torch.where(keep, out.payment, 0.0)
        div[:, t] = torch.where(keep, mechanism.divergence(true, out.logq.unsqueeze(-2)), 0.0)
        ent[:, t] = torch.where(alive, out.entropy, 0.0)
        ref_div[:, t] = torch.where(alive, divergence(log_ref, out.logq, "loglinear"), 0.0)
        alive = alive & (out.token != lm.eos)
        if t + 1 == L or not bool(alive.any()):
            break
        # finished replies are fed the end token: their state is never read again
        state = lm.advance(state, torch.where(alive, out.token, lm.eos))
    value = None if values is None else -(values.to(dtype).unsqueeze(1) * div).sum(1)
    return Reply(tokens=tokens, length=(tokens >= 0).sum(-1), payment=step_payment.sum(1),
                 value=value, step_payment=step_payment, divergence=div, entropy=ent,
                 reference_divergence=ref_div, mentions=lm.mentions(tokens, advertisers))
