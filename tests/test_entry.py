"""Entry rules: decisions, learning and state round trips, vectorised over [R, A]."""

import pytest
import torch

from genmarket.market.scenario.advertisers import Always as AlwaysCfg
from genmarket.market.scenario.advertisers import LearnedEntry, Never, Threshold
from genmarket.strategies.entry import ENTRY_RULES, make_entry_rule


def test_fixed_rules():
    u = torch.rand(3, 4)
    assert make_entry_rule(AlwaysCfg(kind="always"), 3, 4, "cpu", torch.float32).decide(u, 0).all()
    assert not make_entry_rule(Never(kind="never"), 3, 4, "cpu", torch.float32).decide(u, 0).any()


def test_threshold_is_an_ema_of_the_gain():
    cfg = Threshold(kind="threshold", alpha=0.5, initial=1.0, explore=0.0)
    rule = make_entry_rule(cfg, 1, 2, "cpu", torch.float64)
    entered = torch.tensor([[True, False]])
    observed = entered.clone()
    for gain in (-1.0, -1.0, -1.0):
        rule.update(entered, torch.full((1, 2), gain, dtype=torch.float64), observed, 0)
    # estimate_t = 0.5 estimate + 0.5 gain: 1 -> 0 -> -0.5 -> -0.75 for the observed one
    assert rule.estimate[0, 0].item() == pytest.approx(-0.75)
    assert rule.estimate[0, 1].item() == pytest.approx(1.0)  # unobserved: unchanged
    assert rule.decide(torch.full((1, 2), 0.5), 0).tolist() == [[False, True]]
    explorer = make_entry_rule(Threshold(kind="threshold", explore=0.3), 1, 1, "cpu", torch.float32)
    explorer.estimate.fill_(-1.0)
    assert explorer.decide(torch.tensor([[0.2]]), 0).item()  # u < explore: enters anyway
    assert not explorer.decide(torch.tensor([[0.4]]), 0).item()


@pytest.mark.parametrize("full", [False, True])
def test_learned_entry_learns_to_stay_out_of_a_losing_market(full):
    cfg = LearnedEntry(kind="learned")
    rule = make_entry_rule(cfg, 4, 3, "cpu", torch.float32, full=full)
    gen = torch.Generator().manual_seed(0)
    for t in range(400):
        entered = rule.decide(torch.rand(4, 3, generator=gen), t)
        rule.update(entered, torch.full((4, 3), -0.3), torch.ones(4, 3, dtype=torch.bool), t)
    rate = torch.stack([rule.decide(torch.rand(4, 3, generator=gen), 400).float()
                        for _ in range(200)]).mean()
    assert rate < 0.1  # the exploration floor is gamma / 2 = 0.025


def test_learned_entry_state_round_trip():
    cfg = LearnedEntry(kind="learned")
    a = make_entry_rule(cfg, 2, 2, "cpu", torch.float32)
    a.update(torch.ones(2, 2, dtype=torch.bool), torch.tensor([[0.5, -0.5], [1.0, 0.0]]),
             torch.ones(2, 2, dtype=torch.bool), 0)
    b = make_entry_rule(cfg, 2, 2, "cpu", torch.float32)
    b.load_state_dict(a.state_dict())
    u = torch.rand(2, 2)
    assert torch.equal(a.decide(u, 1), b.decide(u, 1))
    assert set(ENTRY_RULES) == {"always", "never", "threshold", "learned"}
