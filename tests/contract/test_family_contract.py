"""The public contract checks (`genmarket.mechanisms.contract`) on every registered family.

Parametrised over the family registry, so a family gets these the day it is registered; the
checks are driven by the family's own example batches, and a family without examples fails.
The classic-auction specifics (deviations, tie-breaking) are in test_mechanism_contract.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genmarket.market.engine.seam import families
from genmarket.mechanisms.classic import FAMILY as CLASSIC
from genmarket.mechanisms.contract import check_example, check_family, check_specs

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device")),
]
FAMILIES = {f.name: f for f in families()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("device", DEVICES)
def test_every_family_passes_the_contract(name, device):
    check_family(FAMILIES[name], devices=[device])


def test_a_family_without_examples_fails_the_contract():
    bare = dataclasses.replace(CLASSIC, name="bare", examples=lambda device, dtype, seed: [])
    with pytest.raises(AssertionError, match="'bare' has no example batches"):
        check_family(bare)


def test_a_mechanism_that_charges_absent_advertisers_fails_the_contract():
    ex = CLASSIC.examples(torch.device("cpu"), torch.float64, 0)[0]

    class Greedy:
        def run(self, batch, generator=None):
            out = ex.mechanism.run(batch)
            return dataclasses.replace(out, payment=out.payment + 0.01)

    with pytest.raises(AssertionError, match="an absent advertiser pays"):
        check_example(dataclasses.replace(ex, mechanism=Greedy()))


def test_a_metric_drawn_in_an_undeclared_panel_fails_the_contract():
    spec = dataclasses.replace(CLASSIC.metrics[0], panel="nowhere")
    broken = dataclasses.replace(CLASSIC, metrics=(spec, *CLASSIC.metrics[1:]))
    with pytest.raises(AssertionError, match="undeclared panels"):
        check_specs(broken)
