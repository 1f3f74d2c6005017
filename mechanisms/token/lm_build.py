"""The token auction's language models built from a scenario: the `[language]` section's text
backend (built as MOSAIC builds it, `build_backend`), wrapped to give next-token laws."""

from __future__ import annotations

from genmarket.mechanisms.backends.text.world import build_backend
from genmarket.mechanisms.token.hf import HFTokenLM
from genmarket.mechanisms.token.lm import TokenLM
from genmarket.mechanisms.token.synthetic import SyntheticTokenLM

__all__ = ["TOKEN_LMS", "build_token_lm"]

# text backend name -> the wrapper that reads next-token laws from it, with the settings it takes
TOKEN_LMS = {"synthetic": (SyntheticTokenLM, ("end_prob", "min_length")), "hf": (HFTokenLM, ())}


def build_token_lm(scenario, world, device, dtype, **settings) -> TokenLM:
    """The TokenLM of the scenario's `[language] backend` for `world` on `device` in `dtype`.

    settings — the token LM's own keywords (synthetic: end_prob, min_length; hf: none).
    Raises ValueError for a backend with no next-token laws or a setting it does not take.
    """
    name = scenario.language.backend
    if name not in TOKEN_LMS:
        raise ValueError(f"language.backend = {name!r}: the token auction needs next-token laws, "
                         f"which only {', '.join(TOKEN_LMS)} give")
    wrapper, known = TOKEN_LMS[name]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a setting of the {name} token LM (its settings: "
                         f"{', '.join(known) or 'none'})")
    return wrapper(build_backend(scenario, world, device, dtype), **settings)
