"""The token auction's `[mechanism]` section (kind = "token_linear" or "token_loglinear") and the
rules a token-auction scenario must follow."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from genmarket.market.scenario.base import NonNeg, Positive, Strict

__all__ = ["KINDS", "TokenSettings", "check"]

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
