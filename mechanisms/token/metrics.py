"""The token auction's per-round metrics and what they mean (metric specifications).

Money is in the scenario's money unit per reply (bids are money per nat of divergence, and every
payment rule charges money: pay-as-bid and second price a bid per token, VCG a weight times
nats); divergences, KL and log-likelihood ratios in nats; lengths in tokens (end token
included). Each metric is one number per replica, [R]:

- revenue: payments per reply, summed over advertisers. revenue_per_token: the round's payments
  over its tokens (spend per token).
- welfare: the reply's value to the advertisers, sum over every advertiser of the market (in
  or out) of -sum_t m_i D_i(q_t) <= 0 (true laws and values), per reply.
- mention_share_{group}: of all brand mentions in the round's replies, the share naming an
  advertiser of the group (NaN without any mention).
- reply_length: tokens per reply. spend_length_corr: Pearson correlation, across the round's
  replies, of a reply's total payment and its length (the MOSAIC paper's criticism: spend grows
  with length).
- kl_ref: sum over the steps of KL(q_t || p_ref,t) along the realised reply, per reply: an
  unbiased estimate of KL(reply law || reference reply law) (the chain rule of KL: the
  expected sum of the step KLs over replies drawn from the auction).
- misreport_gain: mean over advertisers of (the best, over the deviation grid, of the mean
  utility of bidding that multiple of m_i) minus (that of bidding m_i), each step's utility
  exact with the prefix fixed, summed along the realised reply; others' bids fixed. regret: the
  same best against the realised utility, over entrants.
- reply_misreport_gain: the same gain with whole replies re-generated on the round's uniforms
  for each deviating bid (Monte Carlo over the round's auctions; the reply changes after a
  deviation's first changed token).
- llm_misreport_gain: mean over entrants of the best, over the scenario's temperatures, of the
  mean utility of reporting one's LLM at that temperature (log_softmax(log p_i / T): sharpened
  T < 1, flattened T > 1) at one's chosen bid, minus reporting it truthfully; per step exact
  with the prefix fixed, summed along the realised reply.
- exposure_rate: over (reply, advertiser) pairs where the advertiser paid for some token, the
  share where some prefix it paid for favoured it and the whole reply does not: with r_i(x) =
  log p_i(x) - log p_ref(x) its log-likelihood ratio against the reference model (nats),
  r_i(y_<=t) > 0 after some step t at which it paid, and r_i(y) < 0 for the finished reply y
  (the exposure problem: a later token turned the reply against it, e.g. a negation).
- entry_rate, entry_rate_relevant, entry_rate_irrelevant: shares of advertisers in the market
  (relevant: relevance >= 0.5 to some query's topic).
- mean_bid_ratio: bid / m_i over entrants. utility: mean utility per advertiser and reply
  (entry costs included).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.market.engine.seam import MetricSpec, Panel
from genmarket.mechanisms.base import pearson

__all__ = ["METRICS", "PANELS", "round_metrics"]

PANELS = (
    Panel("revenue", "Revenue and the advertisers' value of the reply", "money"),
    Panel("mentions", "Share of brand mentions by group", "share of mentions"),
    Panel("length", "Reply length", "tokens"),
    Panel("spend", "Spend against reply length", "Pearson r"),
    Panel("kl", "User side: KL divergence of the reply law to the reference", "KL (nats)"),
    Panel("incentives", "Incentives: gain from misreporting", "money"),
    Panel("exposure", "Exposure: replies that end worse than a paid prefix", "share of pairs"),
    Panel("entry", "Entry", "share of advertisers entering"),
    Panel("bid_ratio", "Bids", "bid / value per nat"),
)


def _truthful_under_vcg(scenario) -> dict[str, float]:
    """Bidding m_i (multiplier 1) maximises every step's utility under VCG payments, whatever the
    others bid (Duetting et al. 2024); no line for the other payment rules."""
    if scenario.mechanism.payment == "vcg":
        return {"truthful bid (optimal at every step under VCG)": 1.0}
    return {}


METRICS = (
    MetricSpec("revenue", "revenue per reply", "money", "revenue", compared=True),
    MetricSpec("revenue_per_token", "revenue per token", "money", "revenue", compared=True),
    MetricSpec("welfare", "advertisers' value of the reply", "money", "revenue", compared=True),
    MetricSpec("mention_share_{group}", "share of mentions ({group})", "share of mentions",
               "mentions", per_group=True),
    MetricSpec("reply_length", "reply length", "tokens", "length", compared=True),
    MetricSpec("spend_length_corr", "corr(payment, length) across replies", "r", "spend",
               compared=True),
    MetricSpec("kl_ref", "KL to reference (per reply)", "nats", "kl", compared=True),
    MetricSpec("misreport_gain", "bid misreport gain, per step (prefix fixed)", "money",
               "incentives", compared=True),
    MetricSpec("reply_misreport_gain", "bid misreport gain, whole reply re-generated", "money",
               "incentives", compared=True),
    MetricSpec("llm_misreport_gain", "LLM misreport gain (tempered law), per step", "money",
               "incentives", compared=True),
    MetricSpec("regret", "regret", "money", None),
    MetricSpec("exposure_rate", "exposure rate", "share of paying pairs", "exposure",
               compared=True),
    MetricSpec("entry_rate", "entry rate", "share", "entry", compared=True),
    MetricSpec("entry_rate_relevant", "entry rate (relevant)", "share", "entry",
               unraveling=True, compared=True),
    MetricSpec("entry_rate_irrelevant", "entry rate (irrelevant)", "share", "entry",
               compared=True),
    MetricSpec("mean_bid_ratio", "bid / value", "ratio", "bid_ratio", _truthful_under_vcg,
               compared=True),
    MetricSpec("utility", "utility", "money", None, compared=True),
)


def exposure(ratio: Tensor, step_payment: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
    """(events, pairs) [B, n] bool: pairs — advertiser i paid for some token of reply b; events —
    r_i > 0 after some step it paid for and r_i < 0 at the reply's end. ratio [B, L, n]
    r_i(y_<=t) (nats), step_payment [B, L, n] (money), length [B] (tokens)."""
    paid = step_payment > 0
    promised = (paid & (ratio > 0)).any(1)
    end = ratio.gather(1, (length - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, ratio.shape[-1]))
    return promised & (end.squeeze(1) < 0), paid.any(1)


def round_metrics(adapter, rnd, cleared) -> dict[str, Tensor]:
    """The round's metrics, [R] each, in the order of METRICS (per-group ones once per group)."""
    spec = adapter.spec
    R, B, n = spec.R, spec.B, spec.n
    e = cleared.extra
    reply, rep = e["reply"], e["replayed"]
    dt = cleared.gross.dtype
    m, entered = rnd.values, rnd.entered
    ent = entered.to(dt)
    n_in = ent.sum(-1)
    nan = torch.full_like(n_in, float("nan"))
    pay = reply.payment.view(R, B, n).sum(-1)  # [R, B]
    length = reply.length.view(R, B).to(dt)

    dev = adapter.deviation_utility(cleared).mean(1)  # [R, n, G+1]
    best = dev[..., :-1].amax(-1)
    realised = cleared.gross.mean(1)
    whole = adapter.reply_deviation_utility(rnd, cleared).mean(1)
    llm = rep.laws.view(R, B, n, -1).mean(1).amax(-1)  # [R, n]
    llm_gain = torch.where(entered, llm - realised, 0.0).sum(-1) / n_in

    mentions = reply.mentions.view(R, B, n).to(dt).sum(1)  # [R, n]
    total = mentions.sum(-1)
    shares = {f"mention_share_{g.name}": mentions[:, g.cols].sum(-1) / total
              for g in spec.groups}

    events, pairs = exposure(rep.ratio, reply.step_payment, reply.length)
    events, pairs = events.view(R, B, n).to(dt).sum((1, 2)), pairs.view(R, B, n).to(dt).sum((1, 2))

    def share(cols):
        return ent[:, cols].mean(-1) if cols.any() else nan

    bids = e["bids"]
    counted = entered.unsqueeze(1) & (m > 0)
    ratio = torch.where(counted, bids / m.clamp_min(1e-30), 0.0)
    return {
        "revenue": pay.mean(-1),
        "revenue_per_token": pay.sum(-1) / length.sum(-1),
        "welfare": reply.value.view(R, B, n).sum(-1).mean(-1),
        **shares,
        "reply_length": length.mean(-1),
        "spend_length_corr": pearson(pay, length, torch.ones_like(pay)),
        "kl_ref": reply.reference_divergence.sum(-1).view(R, B).mean(-1),
        "misreport_gain": (best - dev[..., -1]).mean(-1),
        "reply_misreport_gain": (whole[..., :-1].amax(-1) - whole[..., -1]).mean(-1),
        "llm_misreport_gain": llm_gain,
        "regret": ((best - realised) * ent).sum(-1) / n_in,
        "exposure_rate": events / pairs,
        "entry_rate": ent.mean(-1),
        "entry_rate_relevant": share(adapter.relevant),
        "entry_rate_irrelevant": share(~adapter.relevant),
        "mean_bid_ratio": ratio.sum((1, 2)) / counted.sum((1, 2)),
        "utility": (realised - ent * spec.entry_cost).mean(-1),
    }
