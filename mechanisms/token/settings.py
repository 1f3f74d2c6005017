"""The token auction's `[mechanism]` section (kind = "token_linear" or "token_loglinear") and the
rules a token-auction scenario must follow."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from genmarket.market.engine.precision import Magnitudes
from genmarket.market.scenario.base import NonNeg, Positive, Strict
from genmarket.mechanisms.token.payments import SCAN

__all__ = ["KINDS", "TokenSettings", "check", "magnitudes", "round_numbers"]

KINDS = ("token_linear", "token_loglinear")


class TokenSettings(Strict):
    """`[mechanism]` of the token auction. `kind` — the aggregation rule: "token_linear" (q =
    sum_i b_i p_i / sum_i b_i, loss KL(p_i || q)) or "token_loglinear" (q ∝ exp(sum_i b_i log p_i /
    sum_i b_i), loss KL(q || p_i)); `payment` — "pay_as_bid", "vcg" or "second_price";
    `reference_weight` — b_0, the reference model's fixed weight (money per nat); `end_prob`,
    `min_length` — the synthetic world's end of a reply (each step ends it with probability
    end_prob once min_length tokens are out; hf replies end with the model's end token);
    `temperatures` — the reported-LLM misreports the `llm_misreport_gain` metric tries (< 1
    sharpened, > 1 flattened)."""

    kind: Literal["token_linear", "token_loglinear"]
    payment: Literal["pay_as_bid", "vcg", "second_price"] = "second_price"
    reference_weight: NonNeg = 0.0
    end_prob: Annotated[float, Field(ge=0, lt=1)] = 0.1
    min_length: Annotated[int, Field(ge=0, le=1024)] = 1
    temperatures: Annotated[list[Positive], Field(min_length=1, max_length=16)] = [
        0.5, 0.8, 1.25, 2.0]

    @field_validator("temperatures")
    @classmethod
    def _distinct(cls, temps: list[float]) -> list[float]:
        if len(set(temps)) != len(temps):
            raise ValueError("must not repeat")
        return temps

    @property
    def rule(self) -> str:
        """"linear" or "loglinear", from the kind."""
        return self.kind.removeprefix("token_")

    def params(self) -> dict[str, Any]:
        """Keyword arguments of the mechanism class."""
        return {"payment": self.payment, "reference_weight": self.reference_weight}

    def lm_settings(self, backend: str) -> dict[str, Any]:
        """Keyword arguments of the token LM of `[language] backend` (synthetic: end_prob and
        min_length; other backends: none)."""
        if backend == "synthetic":
            return {"end_prob": self.end_prob, "min_length": self.min_length}
        return {}


def check(scenario) -> None:
    """The token-auction rules of a whole scenario: no delegation, the end settings only on the
    synthetic world and within the reply length. Raises ValueError with the path of the bad
    field."""
    for i, g in enumerate(scenario.advertisers):
        if g.report is not None:
            raise ValueError(f"advertisers[{i}].report: token-auction advertisers bid "
                             "themselves; put the bidding rule in strategy")
    mech, lang = scenario.mechanism, scenario.language
    if lang.backend != "synthetic":
        for name in ("end_prob", "min_length"):
            if name in mech.model_fields_set:
                raise ValueError(f"mechanism.{name}: only read on language.backend = "
                                 f"'synthetic' (here {lang.backend!r} ends replies itself)")
    elif mech.min_length > lang.length:
        raise ValueError(f"mechanism.min_length = {mech.min_length}: must be <= language.length "
                         f"= {lang.length}, the most tokens a reply has")
    if scenario.experiment is not None and scenario.experiment.kind == "bid_sweep":
        from genmarket.mechanisms.token.sweep import check_sweep  # the sweep imports settings

        check_sweep(scenario)


# nominal divergence of one step's aggregate from an advertiser's law, in nats (the synthetic
# world's per-step divergences are below 1 nat; the run's values are sums over the reply)
NATS_PER_STEP = 2.0


def magnitudes(scenario) -> Magnitudes | None:
    """The numbers a token-auction run computes (`Family.magnitudes`), in money units: values
    and payments are sums over up to L = `[language] length` steps of bids or values (money per
    nat) times per-step divergences, taken as NATS_PER_STEP nats, and the reported quantities
    must resolve one nat at the smallest advertiser's value. None when every value is 0."""
    highs = [g.value_dist.support[1] for g in scenario.advertisers]
    positive = [h for h in highs if h > 0]
    if not positive:
        return None
    L = scenario.language.length
    largest = max(highs) * NATS_PER_STEP * L
    scale = min(positive)
    return Magnitudes(largest, scale, f"value {max(highs):.3g} x {NATS_PER_STEP:g} nats x {L} "
                                      f"steps = {largest:.3g} against a value of {scale:.3g} x 1 nat")


def round_numbers(scenario) -> int:
    """Numbers one token auction (of one replica) holds at once in a round, beyond the engine's
    (`Family.round_numbers`): the largest batch of re-generated replies (n flipped-entry worlds,
    or one advertiser's G + 1 deviation worlds), each with its per-step records (3 L n) and, on
    the synthetic world, its laws by chain state ((states + 1)(n + 1) V); and a replay step's
    deviation tensors, about 14 n (K + T) V numbers (K bids tried: the widest learner grid plus
    the deviation grid; T temperatures), SCAN / 4 = 16 times that for log-linear second price
    (its bid scan). V = 1 + G + topics x W + n (1 + P) tokens on the synthetic world; on hf the
    model's vocabulary is not known before it loads, and only the per-step records are counted.
    Measured on a CPU, float32, R = 1, a collection round of scenarios/token_market.toml's
    market: linear second price B = 2,048 peaked at 657 and 725 MB (two runs) against an estimate
    of 680; log-linear second price B = 256 at 205 and 228 MB against 270."""
    n, L = scenario.n_advertisers, scenario.language.length
    mech, lang = scenario.mechanism, scenario.language
    grid = scenario.metrics.deviation_grid.points()
    K = len(grid) + 1 + max((len(g.strategy.grid.points()) for g in scenario.advertisers
                             if getattr(g.strategy, "grid", None) is not None), default=1)
    worlds = max(n, len(grid) + 1)
    numbers = worlds * 3 * L * n
    if lang.backend == "synthetic":
        syn = lang.synthetic
        V = 1 + syn.general_words + len(lang.topics) * syn.topic_words + n * (
            1 + syn.product_words)
        scan = SCAN // 4 if (mech.kind == "token_loglinear"
                             and mech.payment == "second_price") else 1
        numbers += worlds * (syn.states + 1) * (n + 1) * V
        numbers += 14 * n * (K + len(mech.temperatures)) * V * scan
    return numbers
