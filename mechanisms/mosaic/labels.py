"""Words and units for MOSAIC's generators and the one-shot experiment's columns."""

GENERATORS = {"reference": "baseline (π_ref)", "context": "context-aware (π_gen)"}

LABELS = {
    "revenue": "revenue per auction", "reward_gain": "reward gain", "utility_gain": "utility gain",
    "utility_gain_no_offset": "utility gain without offset",
    "revenue_no_offset": "revenue without offset", "logp_opt": "log π_r(returned reply)",
    "kl_ref": "KL to reference", "gain_correlation": "corr(reward gain, utility gain)",
    "gain_correlation_no_offset": "corr(reward gain, utility gain), no offset",
    "ir_share": "share with utility gain ≥ 0",
}

# the one-shot columns not in reward units (money: reward units per auction)
UNITS = {"logp_opt": "nats", "kl_ref": "nats", "gain_correlation": "Pearson r",
         "gain_correlation_no_offset": "Pearson r", "ir_share": "share of advertisers"}
