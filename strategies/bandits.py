"""No-regret bandit learners: Hedge (full feedback), EXP3 and UCB1 (bandit feedback).

All three keep one learner state per (replica, agent, context) and update once per round
from the means of that round's active auctions, so a round of ``B`` auctions counts like one
observation with less noise (Hedge, EXP3) or like ``B`` pulls (UCB).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmarket.strategies.base import (
    GridFeedback,
    Strategy,
    bucket_action_sum,
    grid_mean,
    grid_sums,
    register_strategy,
)

# exp(-75) / K stays a normal float32 for any K below ~1e5
_LOG_FLOOR = -75.0


class _ExponentialWeights(Strategy):
    """Log-weights ``logw`` [R, A, C, K], kept shifted (largest 0 per row) so that a long run of
    large gains stays finite; policy = softmax(logw), cached once per round."""

    state_names = ("logw",)

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        eta: float,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype)
        self.eta = float(eta)
        self.logw = torch.zeros(R, A, C, K, device=self.device, dtype=dtype)
        self._refresh()

    def _mix(self, p: Tensor) -> Tensor:
        return p

    def _refresh(self) -> None:
        logw = self.logw
        # shift each row so its largest log-weight is 0: finite after any run of gains, and
        # idempotent (x - 0 is x exactly), so a checkpoint reloaded here gives back the very
        # policy the run had (subtracting the log of the total as well was not: float32
        # rounding moved a reloaded policy by ~3e-8)
        logw.sub_(logw.amax(-1, keepdim=True))
        # exp of inputs far below float's normal range takes a slow path on x86 (~100x), and a
        # converged learner has many such actions: floor the exponent, not the stored logw, so
        # such actions keep mass ~1e-33 instead of 0 while the weights stay exact
        if torch.compiler.is_compiling():  # Hedge (EXP3 does not compile): no mixing
            self._p, self._cdf = _eager_softmax(logw)
            return
        self._p = self._mix(_weights(logw))
        self._cdf = self._p.cumsum(-1)

    def policy(self, t: int) -> Tensor:
        """[R, A, C, K] probabilities (independent of ``t`` within and across rounds)."""
        return self._p

    def cdf(self, t: int) -> Tensor:
        return self._cdf

    def _step(self, gain: Tensor) -> None:
        """logw += eta * gain, gain [R, A, C, K] in utility units (0 for untouched contexts);
        the product rounded on its own (add's alpha fuses it on the cpu, a compiled round
        would not)."""
        self.logw.add_(gain * self.eta)
        self._refresh()


def _weights(logw: Tensor) -> Tensor:
    """softmax over the last dimension of shifted log-weights (largest 0 per row), [R, A, C, K]:
    exp of the exponent floored at _LOG_FLOOR, over the sum."""
    weights = logw.clamp_min(_LOG_FLOOR).exp_()
    return weights.div_(weights.sum(-1, keepdim=True))


@torch.library.custom_op("genmarket::softmax_cdf", mutates_args=())
def _eager_softmax(logw: Tensor) -> tuple[Tensor, Tensor]:
    """`_weights` and their cumulative sum as one opaque operator inside a compiled round, so
    that its exp, sum and cumulative sum are the eager kernels': inductor's vectorised exp and
    reductions round differently (1,967 of 21,000 exp values, 479 of 1,000 sums differed in a
    test)."""
    p = _weights(logw)
    return p, p.cumsum(-1)


@_eager_softmax.register_fake
def _(logw: Tensor) -> tuple[Tensor, Tensor]:
    return torch.empty_like(logw), torch.empty_like(logw)


@register_strategy("hedge")
class Hedge(_ExponentialWeights):
    """Hedge / multiplicative weights with full feedback.

    After round t: logw += eta * mean over the round's active auctions of each context of the
    counterfactual utility of every action, so p_t = softmax(eta * sum of past mean utilities).
    ``eta`` is in 1 / utility units.
    """

    needs_full_feedback = True
    compiles = True

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        eta: float = 0.1,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype, eta=eta)

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """See :meth:`Strategy.update`; needs ``grid_utility`` [R, B, A, K]."""
        if grid_utility is None:
            raise ValueError("hedge needs full feedback: grid_utility must not be None")
        self._step(grid_mean(grid_utility, ctx, active, self.C)[0])


@register_strategy("exp3")
class Exp3(_ExponentialWeights):
    """EXP3 with explicit exploration: policy = (1 - gamma) * softmax(logw) + gamma / K.

    Bandit update: logw += eta * g_hat with g_hat[k] = (sum over the context's active auctions
    that played k of utility / p_k) / (number of the context's active auctions), an unbiased
    estimate of action k's mean utility in that context this round. With full feedback the
    bucket mean of ``grid_utility`` replaces the estimate.
    """

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        eta: float = 0.05,
        gamma: float = 0.05,
    ) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"exp3: gamma = {gamma}: must be in [0, 1]")
        self.gamma = float(gamma)
        super().__init__(R, A, C, K, device, dtype, eta=eta)

    def _mix(self, p: Tensor) -> Tensor:
        return p.mul(1.0 - self.gamma).add_(self.gamma / self.K)

    def gain_estimate(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
    ) -> Tensor:
        """The per-context gain of every action this round, [R, A, C, K] (0 where a context
        had no active auction): importance-weighted from the played actions under the current
        policy, or the exact bucket mean of ``grid_utility`` when it is given."""
        if grid_utility is not None:
            return grid_mean(grid_utility, ctx, active, self.C)[0]
        K = self.K
        p_played = self._p.reshape(-1).take((self._row + ctx) * K + actions)  # [R, B, A]
        # floor the probability: with gamma = 0 softmax can underflow to 0 for an action that
        # float rounding still let the market draw
        weighted = utility / p_played.clamp_min(torch.finfo(self._p.dtype).tiny)
        sums, count = bucket_action_sum(weighted, ctx, actions, active, self.C, K)
        return sums / count.sum(-1, keepdim=True).clamp_min(1)

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """See :meth:`Strategy.update`."""
        self._step(self.gain_estimate(ctx, actions, utility, active, grid_utility))


@register_strategy("ucb")
class UCB(Strategy):
    """UCB1 per (replica, agent, context).

    State: pull counts ``N`` and utility sums ``S``, both [R, A, C, K] float64 (counts stay
    exact integers up to 2**53, and sums over millions of rounds do not drift). For the whole
    round the action is the lowest-index untried one, else argmax S/N + c * sqrt(log(sum_k N) / N);
    ``c`` is in utility units. Bandit update counts every active auction as a pull of the
    action it played; full feedback counts it as a pull of every action.
    """

    state_names = ("N", "S")

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        c: float = 1.0,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype)
        self.c = float(c)
        # mps has no float64; there the sums fall back to the run's dtype
        acc = dtype if self.device.type == "mps" else torch.float64
        self.N = torch.zeros(R, A, C, K, device=self.device, dtype=acc)
        self.S = torch.zeros(R, A, C, K, device=self.device, dtype=acc)
        self._refresh()

    def index(self) -> Tensor:
        """UCB1 index [R, A, C, K] in the accumulator dtype; +inf for untried actions."""
        n = self.N
        # c * sqrt(log(total) / n) as (c * sqrt(log total)) [.., 1] * rsqrt(n): one big op less
        scale = n.sum(-1, keepdim=True).log_().sqrt_().mul_(self.c)
        score = (self.S / n).addcmul_(scale, n.rsqrt())
        return torch.where(n == 0, math.inf, score)

    def _refresh(self) -> None:
        # argmax returns the first maximum: untried actions in index order, ties to the lowest
        self._choice = self.index().argmax(-1)  # [R, A, C]

    def policy(self, t: int) -> Tensor:
        """One-hot on this round's choice, [R, A, C, K]."""
        zeros = torch.zeros(self.R, self.A, self.C, self.K, device=self.device, dtype=self.dtype)
        return zeros.scatter_(-1, self._choice.unsqueeze(-1), 1.0)

    def act(self, ctx: Tensor, u: Tensor, t: int) -> Tensor:
        """The round's choice for each auction's context, [R, B, A] long (``u`` is unused:
        the policy is one-hot, so the inverse CDF would give the same)."""
        return self._choice.view(-1)[self._row + ctx]

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """See :meth:`Strategy.update`."""
        if grid_utility is None:
            sums, count = bucket_action_sum(utility, ctx, actions, active, self.C, self.K)
        else:
            sums, count = grid_sums(grid_utility, ctx, active, self.C)
            count = count.unsqueeze(-1)
        self.N.add_(count)
        self.S.add_(sums)
        self._refresh()
