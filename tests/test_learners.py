"""Learning algorithms: closed forms, convergence, unbiasedness, context and replica isolation,
and the per-context averaging they share (checked against a naive loop)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genmarket.strategies import (
    UCB,
    Exp3,
    Hedge,
    QLearning,
    Strategy,
    bucket_action_sum,
    bucket_mean,
    get_strategy,
)
from genmarket.strategies.base import _dense_sum

LEARNERS = ["hedge", "exp3", "ucb", "qlearning"]


def rand_round(g: torch.Generator, R: int, B: int, A: int, C: int, K: int):
    """ctx, u, active, grid_utility of one random round."""
    return (
        torch.randint(0, C, (R, B, A), generator=g),
        torch.rand(R, B, A, generator=g),
        torch.rand(R, B, A, generator=g) > 0.3,
        torch.randn(R, B, A, K, generator=g),
    )


def step(s: Strategy, ctx, u, active, grid, t: int) -> torch.Tensor:
    """act, then update with the played actions' utilities (full feedback if needed)."""
    actions = s.act(ctx, u, t)
    utility = grid.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    s.update(ctx, actions, utility, active, grid if s.needs_full_feedback else None, t)
    return actions


def test_inverse_cdf_skips_zero_mass_actions_at_both_ends():
    s = get_strategy("truthful")(1, 1, 1, 5, truth_index=3)
    u = torch.tensor([0.0, 0.5, 1.0 - 2.0**-24]).view(1, 3, 1)
    ctx = torch.zeros(1, 3, 1, dtype=torch.long)
    assert (Strategy.act(s, ctx, u, 0) == 3).all()
    assert (s.act(ctx, u, 0) == 3).all()


# -- Hedge ----------------------------------------------------------------------------------
def test_hedge_matches_closed_form_and_converges_to_best_action():
    eta, K, B = 0.5, 4, 5
    mean_utility = torch.tensor([0.1, 0.4, 0.3, -0.2])
    g = torch.Generator().manual_seed(0)
    s = Hedge(1, 1, 1, K, eta=eta)
    ctx = torch.zeros(1, B, 1, dtype=torch.long)
    active = torch.ones(1, B, 1, dtype=torch.bool)
    for t in range(1, 201):
        # auctions differ, but their mean is exactly mean_utility: only the mean may matter
        noise = torch.randn(1, B, 1, K, generator=g)
        grid = mean_utility + noise - noise.mean(1, keepdim=True)
        s.update(ctx, ctx, grid[..., 0], active, grid, t)
        if t in (1, 10, 50):
            expected = torch.softmax(eta * t * mean_utility, -1)
            torch.testing.assert_close(s.policy(t)[0, 0, 0], expected, atol=1e-5, rtol=1e-4)
    assert s.policy(200)[0, 0, 0, 1] > 0.99


def test_hedge_without_full_feedback_is_an_error():
    s = Hedge(1, 1, 1, 3)
    z = torch.zeros(1, 2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="full feedback"):
        s.update(z, z, z.float(), z.bool(), None, 0)


# -- EXP3 -----------------------------------------------------------------------------------
def test_exp3_importance_weighted_estimate_is_unbiased():
    """Average of g_hat over many independent replicas ≈ the true mean utilities."""
    R, B, K = 40_000, 3, 3
    true_mean = torch.tensor([0.2, -0.5, 1.0])
    g = torch.Generator().manual_seed(1)
    s = Exp3(R, 1, 1, K, eta=0.05, gamma=0.1)
    # a skewed policy, so that importance weights actually differ between actions
    s.load_state_dict({"logw": torch.tensor([0.0, -2.0, 1.0]).expand(R, 1, 1, K).clone()})
    ctx = torch.zeros(R, B, 1, dtype=torch.long)
    actions = s.act(ctx, torch.rand(R, B, 1, generator=g), 0)
    utility = true_mean[actions] + torch.randn(R, B, 1, generator=g)
    active = torch.rand(R, B, 1, generator=g) > 0.2
    g_hat = s.gain_estimate(ctx, actions, utility, active, None)[:, 0, 0]  # [R, K]
    has_auction = active.any(1)[:, 0]
    g_hat = g_hat[has_auction]
    stderr = g_hat.std(0) / math.sqrt(g_hat.shape[0])
    assert ((g_hat.mean(0) - true_mean).abs() < 4 * stderr).all(), (g_hat.mean(0), stderr)
    # and the estimate is not trivially the played utility: unplayed actions got 0 this round
    played = torch.nn.functional.one_hot(actions, K).bool() & active.unsqueeze(-1)
    assert (g_hat[~played.any(1)[has_auction, 0]] == 0).all()


def test_exp3_policy_mixes_in_uniform_exploration():
    K, gamma = 4, 0.2
    s = Exp3(1, 1, 1, K, gamma=gamma)
    logw = torch.tensor([5.0, 0.0, -1.0, 2.0]).view(1, 1, 1, K)
    s.load_state_dict({"logw": logw})
    expected = (1 - gamma) * torch.softmax(logw, -1) + gamma / K
    torch.testing.assert_close(s.policy(0), expected)
    assert (s.policy(0) >= gamma / K - 1e-7).all()


# -- UCB ------------------------------------------------------------------------------------
def test_ucb_tries_every_arm_once_then_concentrates_on_best():
    R, K, T = 20, 3, 1500
    means = torch.tensor([0.2, 0.5, 0.8])
    g = torch.Generator().manual_seed(2)
    s = UCB(R, 1, 1, K, c=1.0)
    ctx = torch.zeros(R, 1, 1, dtype=torch.long)
    active = torch.ones(R, 1, 1, dtype=torch.bool)
    played = []
    for t in range(T):
        actions = s.act(ctx, torch.rand(R, 1, 1, generator=g), t)
        reward = (torch.rand(R, 1, 1, generator=g) < means[actions]).float()
        s.update(ctx, actions, reward, active, None, t)
        played.append(actions[:, 0, 0])
    played = torch.stack(played, 1)  # [R, T]
    assert (played[:, :K] == torch.arange(K)).all()
    assert (s.N[..., 0, 0, :] >= 1).all() and s.N.sum() == R * T
    assert (s.N[:, 0, 0].argmax(-1) == 2).all()
    assert (played[:, -500:] == 2).float().mean() > 0.8


def test_ucb_index_closed_form_on_hand_example():
    s = UCB(1, 1, 1, 3, c=1.0)
    N = torch.tensor([2.0, 1.0, 3.0]).view(1, 1, 1, 3)
    S = torch.tensor([1.0, 0.8, 2.4], dtype=torch.float64).view(1, 1, 1, 3)
    s.load_state_dict({"N": N, "S": S})
    # S/N + c * sqrt(log(sum N) / N), by hand: arm 1 has the fewest pulls and wins
    expected = [
        s_k / n_k + math.sqrt(math.log(6) / n_k) for s_k, n_k in [(1, 2), (0.8, 1), (2.4, 3)]
    ]
    assert s.index()[0, 0, 0].tolist() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx([1.446509, 2.138566, 1.572822], abs=1e-6)
    ctx = torch.zeros(1, 4, 1, dtype=torch.long)
    assert (s.act(ctx, torch.rand(1, 4, 1), 0) == 1).all()
    torch.testing.assert_close(s.policy(0)[0, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_ucb_full_feedback_counts_every_action():
    s = UCB(1, 1, 1, 3)
    ctx = torch.zeros(1, 4, 1, dtype=torch.long)
    active = torch.tensor([True, True, False, True]).view(1, 4, 1)
    grid = torch.arange(12.0).view(1, 4, 1, 3)
    s.update(ctx, ctx, grid[..., 0], active, grid, 0)
    assert s.N[0, 0, 0].tolist() == [3.0, 3.0, 3.0]
    assert s.S[0, 0, 0].tolist() == [0 + 3 + 9, 1 + 4 + 10, 2 + 5 + 11]


# -- Q-learning -----------------------------------------------------------------------------
def test_qlearning_lr_one_stores_last_mean_reward():
    K, B = 4, 6
    s = QLearning(1, 1, 1, K, lr=1.0, discount=0.0, q0=0.5)
    ctx = torch.zeros(1, B, 1, dtype=torch.long)
    active = torch.ones(1, B, 1, dtype=torch.bool)
    active[0, 5] = False
    for t, scale in enumerate([1.0, 3.0]):
        actions = torch.tensor([1, 1, 3, 3, 3, 0]).view(1, B, 1)
        utility = scale * torch.tensor([0.3, 0.7, 1.0, 2.0, 6.0, 100.0]).view(1, B, 1)
        s.update(ctx, actions, utility, active, None, t)
        q = s.Q[0, 0, 0]
        assert q[1].item() == pytest.approx(scale * 0.5)
        assert q[3].item() == pytest.approx(scale * 3.0)
        # action 0 was played only in an inactive auction, action 2 never
        assert q[0].item() == 0.5 and q[2].item() == 0.5


def test_qlearning_discounted_update_one_step():
    s = QLearning(1, 1, 1, 3, lr=0.5, discount=0.9, q0=1.0)
    s.load_state_dict({"Q": torch.tensor([1.0, 2.0, 0.0]).view(1, 1, 1, 3)})
    z = torch.zeros(1, 1, 1, dtype=torch.long)
    s.update(z, z, torch.full((1, 1, 1), 4.0), z == 0, None, 0)
    # Q[0] += 0.5 * (4 + 0.9 * max Q - Q[0]) with max Q = 2 before the update
    assert s.Q[0, 0, 0].tolist() == pytest.approx([1.0 + 0.5 * (4 + 1.8 - 1.0), 2.0, 0.0])


def test_qlearning_epsilon_schedule_and_greedy_policy():
    K = 5
    s = QLearning(2, 1, 1, K, epsilon_start=0.8, epsilon_decay=1e-2)
    for t in (0, 1, 10, 250, 1000):
        assert s.epsilon(t) == pytest.approx(0.8 * math.exp(-1e-2 * t), rel=1e-12)
    Q = torch.tensor([[0.1, 0.9, 0.9, -1.0, 0.0], [3.0, 2.0, 1.0, 0.0, 3.0]]).view(2, 1, 1, K)
    s.load_state_dict({"Q": Q})
    assert s.greedy()[:, 0, 0].tolist() == [1, 0]  # ties go to the lowest index
    eps = s.epsilon(50)
    expected = torch.full((2, 1, 1, K), eps / K)
    expected[0, 0, 0, 1] += 1 - eps
    expected[1, 0, 0, 0] += 1 - eps
    torch.testing.assert_close(s.policy(50), expected)
    # long after the schedule has run out the policy is purely greedy
    assert torch.equal(s.policy(10**7).argmax(-1), s.greedy())
    assert s.policy(10**7).max() == 1.0


# -- contexts, inactive auctions, replicas ----------------------------------------------------
@pytest.mark.parametrize("name", LEARNERS)
def test_updates_in_context_0_leave_context_1_untouched(name):
    R, A, C, K, B = 2, 2, 2, 4, 5
    g = torch.Generator().manual_seed(3)
    s = get_strategy(name)(R, A, C, K)
    before = {key: value[:, :, 1].clone() for key, value in s.state_dict().items()}
    late = 10**4  # past Q-learning's exploration phase, so that its policy shows what it learnt
    p_before = s.policy(late)[:, :, 1].clone()
    for t in range(5):
        ctx, u, active, grid = rand_round(g, R, B, A, C, K)
        step(s, torch.zeros_like(ctx), u, active, grid, t)
    for key, value in s.state_dict().items():
        assert torch.equal(value[:, :, 1], before[key]), key
    assert torch.equal(s.policy(late)[:, :, 1], p_before)
    assert not torch.equal(s.policy(late)[:, :, 0], p_before)  # context 0 did learn


@pytest.mark.parametrize("name", LEARNERS)
@pytest.mark.parametrize("full", [False, True])
def test_inactive_auctions_change_nothing(name, full):
    """Garbage in the inactive auctions' utilities and actions gives the same learner."""
    if name == "hedge" and not full:
        pytest.skip("hedge needs full feedback")
    R, A, C, K, B = 2, 2, 3, 4, 6
    g = torch.Generator().manual_seed(4)
    clean, dirty = (get_strategy(name)(R, A, C, K) for _ in range(2))
    for t in range(5):
        ctx, u, active, grid = rand_round(g, R, B, A, C, K)
        actions = clean.act(ctx, u, t)
        utility = grid.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        clean.update(ctx, actions, utility, active, grid if full else None, t)
        junk_actions = torch.where(active, actions, (actions + 1) % K)
        junk_utility = torch.where(active, utility, 1e30)
        junk_grid = torch.where(active.unsqueeze(-1), grid, float("nan"))
        dirty.update(ctx, junk_actions, junk_utility, active, junk_grid if full else None, t)
        for key, value in clean.state_dict().items():
            assert torch.equal(value, dirty.state_dict()[key]), key


@pytest.mark.parametrize("name", LEARNERS)
def test_replicas_are_independent(name):
    """One run with R = 3 equals three runs with R = 1 fed the same per-replica inputs."""
    R, A, C, K, B = 3, 2, 2, 5, 4
    g = torch.Generator().manual_seed(5)
    rounds = [rand_round(g, R, B, A, C, K) for _ in range(8)]
    joint = get_strategy(name)(R, A, C, K)
    joint_actions = torch.stack([step(joint, *x, t) for t, x in enumerate(rounds)])
    for r in range(R):
        alone = get_strategy(name)(1, A, C, K)
        rows = [tuple(v[r : r + 1] for v in x) for x in rounds]
        actions = torch.stack([step(alone, *x, t) for t, x in enumerate(rows)])
        assert torch.equal(actions, joint_actions[:, r : r + 1])
        torch.testing.assert_close(alone.policy(8), joint.policy(8)[r : r + 1])


# -- per-context averages -------------------------------------------------------------------
@settings(deadline=None, max_examples=60)
@given(
    R=st.integers(1, 3),
    B=st.integers(1, 5),
    A=st.integers(1, 3),
    C=st.integers(1, 4),
    K=st.one_of(st.none(), st.integers(1, 4)),
    seed=st.integers(0, 2**31 - 1),
)
def test_bucket_mean_matches_naive_loop(R, B, A, C, K, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (R, B, A) if K is None else (R, B, A, K)
    values = torch.randn(shape, generator=g, dtype=torch.float64)
    ctx = torch.randint(0, C, (R, B, A), generator=g)
    active = torch.rand(R, B, A, generator=g) > 0.4
    values[~active] = float("nan")  # inactive entries must not leak, even as NaN
    mean, count = bucket_mean(values, ctx, active, C)
    tail = () if K is None else (K,)
    want_mean = torch.zeros((R, A, C, *tail), dtype=torch.float64)
    want_count = torch.zeros(R, A, C, dtype=torch.float64)
    for r in range(R):
        for a in range(A):
            for c in range(C):
                hits = [b for b in range(B) if active[r, b, a] and ctx[r, b, a] == c]
                want_count[r, a, c] = len(hits)
                if hits:
                    want_mean[r, a, c] = sum(values[r, b, a] for b in hits) / len(hits)
    assert torch.equal(count, want_count)
    torch.testing.assert_close(mean, want_mean)
    # the dense, atomics-free path used off the cpu gives the same sums
    mask = active.unsqueeze(-1) if K is not None else active
    dense_sums, dense_count = _dense_sum(
        torch.where(mask, values, 0.0), active.to(values.dtype), ctx, C
    )
    assert torch.equal(dense_count, want_count)
    denom = want_count.clamp_min(1)
    torch.testing.assert_close(
        dense_sums / (denom if K is None else denom.unsqueeze(-1)), want_mean
    )


@settings(deadline=None, max_examples=40)
@given(
    R=st.integers(1, 3),
    B=st.integers(1, 5),
    A=st.integers(1, 3),
    C=st.integers(1, 3),
    K=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_bucket_action_sum_matches_naive_loop(R, B, A, C, K, seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(R, B, A, generator=g, dtype=torch.float64)
    ctx = torch.randint(0, C, (R, B, A), generator=g)
    actions = torch.randint(0, K, (R, B, A), generator=g)
    active = torch.rand(R, B, A, generator=g) > 0.4
    sums, count = bucket_action_sum(values, ctx, actions, active, C, K)
    want_sums = torch.zeros(R, A, C, K, dtype=torch.float64)
    want_count = torch.zeros(R, A, C, K, dtype=torch.float64)
    for r in range(R):
        for b in range(B):
            for a in range(A):
                if active[r, b, a]:
                    want_sums[r, a, ctx[r, b, a], actions[r, b, a]] += values[r, b, a]
                    want_count[r, a, ctx[r, b, a], actions[r, b, a]] += 1
    assert torch.equal(count, want_count)
    torch.testing.assert_close(sums, want_sums)


def test_qlearning_one_auction_fast_path_equals_general_path():
    """With one auction per round the Q update touches only the played cells; it must give
    exactly what the general per-(context, action) mean update gives."""
    from genmarket.strategies.qlearning import QLearning

    R, A, C, K = 5, 3, 2, 7
    gen = torch.Generator().manual_seed(1)
    fast = QLearning(R, A, C, K, lr=0.3, discount=0.6, q0=0.2)
    slow = QLearning(R, A, C, K, lr=0.3, discount=0.6, q0=0.2)
    for t in range(30):
        ctx = torch.randint(0, C, (R, 1, A), generator=gen)
        u = torch.rand(R, 1, A, generator=gen)
        actions = fast.act(ctx, u, t)
        utility = torch.randn(R, 1, A, generator=gen)
        active = torch.rand(R, 1, A, generator=gen) < 0.8
        fast.update(ctx, actions, utility, active, None, t)
        # the general path, as for B > 1: duplicate the auction with the second copy inactive
        slow.update(torch.cat([ctx, ctx], 1), torch.cat([actions, actions], 1),
                    torch.cat([utility, utility], 1),
                    torch.cat([active, torch.zeros_like(active)], 1), None, t)
        assert torch.equal(fast.Q, slow.Q)
        assert torch.equal(fast.policy(t), slow.policy(t))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 6),
    st.sampled_from([1.0, 0.5]), st.sampled_from([0.0, 0.9]), st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_qlearning_cached_greedy_follows_the_table(R, A, C, K, lr, discount, seed, all_rows):
    """The one-auction update keeps each row's maximum and first argmax incrementally (and
    re-reduces only rows whose greedy cell fell to the bound); after every round they must
    equal a fresh reduction of Q. Utilities on a coarse grid with lr 1 or 1/2 make exact ties
    common. `all_rows` runs the accelerator's sync-free branch on the cpu."""
    from genmarket.strategies.qlearning import QLearning

    gen = torch.Generator().manual_seed(seed)
    s = QLearning(R, A, C, K, lr=lr, discount=discount, epsilon_start=0.5, epsilon_decay=0.05)
    s.reduce_all_rows = all_rows
    for t in range(40):
        ctx = torch.randint(0, C, (R, 1, A), generator=gen)
        actions = s.act(ctx, torch.rand(R, 1, A, generator=gen), t)
        utility = torch.randint(-2, 3, (R, 1, A), generator=gen).float()
        active = torch.rand(R, 1, A, generator=gen) < 0.8
        s.update(ctx, actions, utility, active, None, t)
        m, g = s.Q.max(-1)  # first maximum
        assert torch.equal(s._max.view(R, A, C), m)
        assert torch.equal(s.greedy(), g)
        # the bound on the other cells of each row is an upper bound
        rest = s.Q.scatter(-1, g.unsqueeze(-1), float("-inf")).amax(-1)
        assert (s._bound.view(R, A, C) >= rest).all()


@pytest.mark.parametrize("t", [0, 30, 200, 10_000])
def test_qlearning_closed_form_act_is_the_inverse_cdf_of_its_policy(t):
    """QLearning.act draws by the closed-form inverse CDF of the epsilon-greedy policy: the same
    actions as the generic search over policy(t).cumsum(-1) on the same uniforms (float64)."""
    from genmarket.strategies.qlearning import QLearning

    R, A, C, K, B = 3, 2, 3, 7, 4000
    gen = torch.Generator().manual_seed(t)
    s = QLearning(R, A, C, K, dtype=torch.float64, epsilon_start=0.9, epsilon_decay=0.01)
    s.load_state_dict({"Q": torch.randint(0, 4, (R, A, C, K), generator=gen).double()})
    ctx = torch.randint(0, C, (R, B, A), generator=gen)
    # uniforms as the market draws them (24 bits). The two computations round differently only
    # within ~1e-16 of a cdf step, which no such uniform comes near (probability ~K * 1e-16)
    u = torch.rand(R, B, A, generator=gen).double()
    eps = s.epsilon(t)
    got = s.act(ctx, u, t)
    assert torch.equal(got, Strategy.act(s, ctx, u, t))
    if eps > 0:  # the draws follow the policy: greedy share 1 - eps + eps / K
        share = (got == s.greedy().unsqueeze(1).expand(R, B, A, C).gather(-1, ctx.unsqueeze(-1))
                 .squeeze(-1)).double().mean()
        assert abs(share - (1 - eps + eps / K)) < 4 * math.sqrt(0.25 / (R * B * A))
