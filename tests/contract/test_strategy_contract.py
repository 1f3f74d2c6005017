"""Checks every registered strategy gets for free (scikit-learn's check_estimator, for us).

Each test runs over the whole registry: a new strategy is held to the same contract the day it
is registered. Shapes follow the base class: ctx/u/actions [R, B, A], policy [R, A, C, K].
"""

from __future__ import annotations

import pytest
import torch

from genmarket.strategies import STRATEGIES, Strategy, get_strategy

R, A, C, K, B = 3, 2, 4, 5, 6
NAMES = sorted(STRATEGIES)
TIMES = (0, 1, 7, 1_000, 10**6)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")


def make(name: str, device: str = "cpu") -> Strategy:
    return get_strategy(name)(R, A, C, K, device=device)


def round_inputs(seed: int, device: str = "cpu", scale: float = 1.0) -> dict[str, torch.Tensor]:
    """One round of random market feedback; about a quarter of the auctions inactive."""
    g = torch.Generator().manual_seed(seed)
    grid = scale * (2 * torch.rand(R, B, A, K, generator=g) - 1)
    inputs = {
        "ctx": torch.randint(0, C, (R, B, A), generator=g),
        "u": torch.rand(R, B, A, generator=g),
        "active": torch.rand(R, B, A, generator=g) > 0.25,
        "grid_utility": grid,
    }
    return {key: value.to(device) for key, value in inputs.items()}


def play_round(s: Strategy, seed: int, t: int, scale: float = 1.0, full: bool | None = None):
    """act then update on one random round; full feedback when the strategy needs it (or when
    ``full`` says so). Returns the actions drawn."""
    x = round_inputs(seed, str(s.device), scale)
    actions = s.act(x["ctx"], x["u"], t)
    utility = x["grid_utility"].gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    use_full = s.needs_full_feedback if full is None else full or s.needs_full_feedback
    grid = x["grid_utility"] if use_full else None
    s.update(x["ctx"], actions, utility, x["active"], grid, t)
    return actions


def assert_valid_policy(p: torch.Tensor) -> None:
    assert p.shape == (R, A, C, K)
    assert torch.isfinite(p).all()
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(R, A, C, dtype=p.dtype, device=p.device))


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_named_strategy(name):
    cls = STRATEGIES[name]
    assert issubclass(cls, Strategy)
    assert cls.name == name
    assert isinstance(cls.learns, bool) and isinstance(cls.needs_full_feedback, bool)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_is_an_error(name):
    with pytest.raises(TypeError, match="no_such_param"):
        get_strategy(name)(R, A, C, K, no_such_param=1)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="qlearn") as info:
        get_strategy("qlearn")
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_policy_shape_and_rows_sum_to_one(name):
    s = make(name)
    for t in TIMES:
        assert_valid_policy(s.policy(t))
    for t in range(5):
        play_round(s, seed=t, t=t)
        for t_later in TIMES:
            assert_valid_policy(s.policy(t_later))


@pytest.mark.parametrize("name", NAMES)
def test_act_is_in_range_deterministic_and_follows_the_policy(name):
    s = make(name)
    for t in range(4):
        x = round_inputs(100 + t)
        # the ends of [0, 1): u = 0 must not land on a zero-mass action, nor u -> 1 overflow
        x["u"][:, 0] = 0.0
        x["u"][:, 1] = 1.0 - 2.0**-24
        actions = s.act(x["ctx"], x["u"], t)
        assert actions.dtype == torch.long and actions.shape == (R, B, A)
        assert ((actions >= 0) & (actions < K)).all()
        assert torch.equal(actions, s.act(x["ctx"], x["u"], t))
        # an overriding act must draw what the base inverse CDF of its own policy draws
        assert torch.equal(actions, Strategy.act(s, x["ctx"], x["u"], t))
        play_round(s, seed=t, t=t)


@pytest.mark.parametrize("name", NAMES)
def test_act_draws_match_policy_frequencies(name):
    """Many uniforms on one context: empirical action shares approach the policy row."""
    s = make(name)
    for t in range(3):
        play_round(s, seed=t, t=t)
    n = 4000
    u = ((torch.arange(n, dtype=torch.float32) + 0.5) / n).view(1, n, 1).expand(R, n, A)
    ctx = torch.full((R, n, A), 2, dtype=torch.long)
    actions = s.act(ctx, u, 3)
    shares = torch.nn.functional.one_hot(actions, K).float().mean(1)  # [R, A, K]
    torch.testing.assert_close(shares, s.policy(3)[:, :, 2], atol=2.0 / n, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("full", [False, True])
def test_update_with_random_inputs_keeps_policy_finite(name, full):
    s = make(name)
    if s.needs_full_feedback and not full:
        with pytest.raises(ValueError):
            x = round_inputs(0)
            s.update(x["ctx"], x["ctx"] * 0, x["u"], x["active"], None, 0)
        return
    for t in range(20):
        play_round(s, seed=t, t=t, full=full)
    for t in TIMES:
        assert_valid_policy(s.policy(t))


@pytest.mark.parametrize("name", NAMES)
def test_all_inactive_round_changes_nothing(name):
    s = make(name)
    for t in range(3):
        play_round(s, seed=t, t=t)
    before = s.state_dict()
    x = round_inputs(50)
    actions = s.act(x["ctx"], x["u"], 3)
    nan_utility = torch.full((R, B, A), float("nan"))
    nan_grid = torch.full((R, B, A, K), float("nan"))
    s.update(x["ctx"], actions, nan_utility, torch.zeros(R, B, A, dtype=torch.bool), nan_grid, 3)
    after = s.state_dict()
    assert set(before) == set(after)
    for key in before:
        assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_bit_identically(name):
    """40 rounds first: in float32 a reload that re-normalised the state (Hedge and EXP3 once
    subtracted the log of the total again) moved the policy by ~3e-8, which 6 rounds missed."""
    s = make(name)
    for t in range(40):
        play_round(s, seed=t, t=t)
    state = s.state_dict()
    resumed = make(name)
    resumed.load_state_dict(state)
    for t in range(40, 46):
        assert torch.equal(s.policy(t), resumed.policy(t))
        assert torch.equal(play_round(s, seed=t, t=t), play_round(resumed, seed=t, t=t))
    for key, value in s.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    if s.learns:
        # state_dict hands out copies: the learner moved on, the saved state did not
        assert any(not torch.equal(state[k], v) for k, v in s.state_dict().items())


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_rejects_wrong_keys(name):
    s = make(name)
    with pytest.raises(KeyError):
        s.load_state_dict({"not_a_state": torch.zeros(1)})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_huge_utilities_do_not_make_nan(name, scale):
    s = make(name)
    for t in range(30):
        # alternate signs across rounds too: the worst case for a cumulative learner
        play_round(s, seed=t, t=t, scale=scale * (-1) ** t)
        assert_valid_policy(s.policy(t))
    for value in s.state_dict().values():
        assert not torch.isnan(value).any()


@CUDA
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda_like_on_cpu(name):
    gpu, again, cpu = make(name, "cuda"), make(name, "cuda"), make(name, "cpu")
    for t in range(5):
        a_gpu = play_round(gpu, seed=t, t=t)
        # same inputs, same bits: no atomics-order rounding in the learner's sums
        assert torch.equal(a_gpu, play_round(again, seed=t, t=t))
        play_round(cpu, seed=t, t=t)
        assert a_gpu.device.type == "cuda"
        assert ((a_gpu >= 0) & (a_gpu < K)).all()
        # float reductions may differ in the last bit between devices: compare policies
        # closely, actions only through the policy they were drawn from
        torch.testing.assert_close(gpu.policy(t).cpu(), cpu.policy(t), atol=1e-5, rtol=1e-5)
        assert_valid_policy(gpu.policy(t))
    for key, value in gpu.state_dict().items():
        assert value.device.type == "cuda"
        assert torch.equal(value, again.state_dict()[key]), key
    # a checkpoint written on cpu resumes on cuda
    moved = make(name, "cuda")
    moved.load_state_dict(cpu.state_dict())
    torch.testing.assert_close(moved.policy(5).cpu(), cpu.policy(5))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_grid_feedback_sums_equal_the_dense_grid(name):
    """Pre-summed full feedback (what the market passes) updates a learner exactly as the
    dense [R, B, A, K] grid of utilities would, up to float rounding."""
    from genmarket.market.engine.learning import grid_feedback
    from genmarket.strategies.base import GridFeedback

    R, B, A, C, K = 2, 7, 3, 2, 5
    gen = torch.Generator().manual_seed(4)
    ctx = torch.randint(0, C, (R, B, A), generator=gen)
    active = torch.rand(R, B, A, generator=gen) < 0.7
    value = torch.rand(R, B, A, generator=gen, dtype=torch.float64)
    alloc = (torch.rand(R, B, A, K, generator=gen, dtype=torch.float64) < 0.5).double()
    pay = torch.rand(R, B, A, K, generator=gen, dtype=torch.float64) * alloc
    dense = value.unsqueeze(-1) * alloc - pay
    summed = grid_feedback(value, alloc, pay, ctx, active, C)
    assert isinstance(summed, GridFeedback)
    cls = STRATEGIES[name]
    a = cls(R, A, C, K, dtype=torch.float64)
    b = cls(R, A, C, K, dtype=torch.float64)
    actions = torch.randint(0, K, (R, B, A), generator=gen)
    utility = dense.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    a.update(ctx, actions, utility, active, dense, 0)
    b.update(ctx, actions, utility, active, summed, 0)
    for key in cls.state_names:
        torch.testing.assert_close(getattr(a, key), getattr(b, key), rtol=1e-12, atol=1e-12)
