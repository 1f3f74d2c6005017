"""Convergence diagnostics over the summary window: did the learners stop learning?

A finding read from the last rounds of a run only describes where learning ends if the learners
have stopped moving there. For every learning policy (a group's bidder, or its reporter when the
group delegates) the engine keeps, over the summary window (the last `window_length(steps)`
rounds, the same rounds the summaries average):

- the policy at the start of the window and the running sum of the policy over its rounds, so
  the report can say how far the policy moved (total variation distance, and the shift of the
  expected grid point: a bid or report multiplier, or an absolute bid) and what the bid function
  per value bucket was on average (`Diagnostics.bid_function`);
- the per-context sums of every grid action's utility and of the realised utility, on the same
  auctions, so the empirical regret against the best fixed action per value bucket is exact
  (`Diagnostics.convergence`). Under bandit feedback the learner never sees those counterfactual
  utilities; the adapter computes them on window rounds for the diagnostics only;
- the ledger at the start of the window, so per-advertiser payoffs over every round of the window
  follow from two snapshots (`Diagnostics.window_ledger`);
- for a learning entry rule (threshold or learned), the probability of entering at the window's
  start and end, and the gain from entering summed over the window, so the regret against always
  entering or always staying out follows (where the gain is observed: every round with full
  feedback, the rounds entered with bandit feedback).

All sums are float64 and live in the checkpoint, so a resumed run reports exactly what an
uninterrupted one does. A run extended (`--resume` with more steps) past the start of its new
window cannot have them: `available` is then False and says why.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genmarket.strategies.base import bucket_sum, grid_sums

__all__ = ["Diagnostics", "window_length", "window_start"]


def window_length(steps: int) -> int:
    """Rounds in the summary window of a `steps`-round run: the last 10% (at least one)."""
    return max(1, steps // 10)


def window_start(steps: int) -> int:
    """The last round before the summary window (0: the window starts at round 1)."""
    return steps - window_length(steps)


class _Track:
    """One learning policy's window sums, [R, A, C(, K)] float64."""

    def __init__(self, group, role: str, policy):
        self.group, self.role, self.policy = group, role, policy
        s = policy.strategy
        shape = (s.R, s.A, s.C)
        dev = policy.grid.device
        self.start = torch.zeros((*shape, s.K), dtype=torch.float64, device=dev)
        self.policy_sum = torch.zeros_like(self.start)
        self.grid = torch.zeros_like(self.start)
        self.own = torch.zeros(shape, dtype=torch.float64, device=dev)
        self.count = torch.zeros(shape, dtype=torch.float64, device=dev)
        self.won = torch.zeros(shape, dtype=torch.float64, device=dev)
        self.grid_seen = torch.zeros((), dtype=torch.float64, device=dev)  # window rounds with a grid

    names = ("start", "policy_sum", "grid", "own", "count", "won", "grid_seen")


class _EntryTrack:
    """One learning entry rule's window sums, [R, A] float64: the probability of entering at the
    window start, the gain from entering (per auction, entry cost included) summed over the rounds
    where it is observed, the gain realised (entered rounds only) and those rounds."""

    names = ("start", "gain", "realised", "rounds")

    def __init__(self, group, rule, R: int, device):
        self.group, self.role, self.rule = group, "entry", rule
        self.start = torch.zeros((R, group.A), dtype=torch.float64, device=device)
        self.gain = torch.zeros_like(self.start)
        self.realised = torch.zeros_like(self.start)
        self.rounds = torch.zeros_like(self.start)


class Diagnostics:
    """The window sums of every learning policy of a market, and the ledger at the window start.

    `groups` are the market's advertiser groups; `steps` the run's length; `ledger_state` a
    function returning the engine's ledger tensors to snapshot.
    """

    def __init__(self, groups, steps: int, ledger_state, full: bool = True):
        self.first = window_start(steps) + 1  # the first round of the window, 1-based
        self.full = full  # full feedback: an entry rule's gain is seen every round
        self.rounds = 0  # window rounds seen so far
        self._ledger_state = ledger_state
        self.ledger_start: dict[str, Tensor] | None = None
        self.available, self.why = True, ""
        self.tracks: list[_Track] = []
        for g in groups:
            if g.reporter is not None and g.reporter.learns:
                self.tracks.append(_Track(g, "reporter", g.reporter))
            if g.bidder.learns:
                self.tracks.append(_Track(g, "bidder", g.bidder))
        device = next(iter(ledger_state().values())).device
        R = next(iter(ledger_state().values())).shape[0]
        self.entry_tracks = {g.index: _EntryTrack(g, g.entry, R, device) for g in groups
                             if g.entry.enter_probability(0) is not None}

    def in_window(self, step: int) -> bool:
        """Whether round `step` (1-based, as Mesa counts) is in the summary window."""
        return self.available and step >= self.first

    def begin_round(self, step: int, t: int) -> None:
        """Called before round `step` acts: at the window's first round, snapshot the policies
        and the ledger."""
        if not self.available or step != self.first:
            return
        self.ledger_start = {k: v.clone() for k, v in self._ledger_state().items()}
        for tr in self.tracks:
            tr.start.copy_(tr.policy.strategy.policy(t))
        for et in self.entry_tracks.values():
            et.start.copy_(et.rule.enter_probability(t))

    def observe(self, tr: _Track, ctx: Tensor, own: Tensor, active: Tensor, grid, won: Tensor,
                t: int) -> None:
        """Add one window round of one policy: ctx [R, B, A] long, own (realised utility the
        learner maximises) and won [R, B, A], active [R, B, A] bool, grid the adapter's
        counterfactual feedback (GridFeedback or [R, B, A, K])."""
        C = tr.policy.C
        tr.policy_sum += tr.policy.strategy.policy(t)
        o, n = bucket_sum(own.double(), ctx, active, C)
        tr.own += o
        tr.count += n
        tr.won += bucket_sum(won.double(), ctx, active, C)[0]
        if grid is not None:
            tr.grid += grid_sums(grid, ctx, active, C)[0].double()
            tr.grid_seen += 1

    def observe_entry(self, group, entered: Tensor, gain: Tensor, observed: Tensor) -> None:
        """Add one window round of a group's entry rule: entered, observed [R, A] bool; gain
        [R, A] the per-auction utility of entering minus staying out, entry cost included."""
        et = self.entry_tracks.get(group.index)
        if et is None:
            return
        seen = observed.double()
        g = torch.where(observed, gain.double(), 0.0)
        et.gain += g
        et.realised += g * entered.double()
        et.rounds += seen

    def end_round(self) -> None:
        self.rounds += 1

    # ------------------------------------------------------------------ results

    def window_ledger(self, ledger: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """The ledger over the window's rounds only (float64 [R, n] each), or None without a
        start snapshot."""
        if not self.available or self.ledger_start is None or self.rounds == 0:
            return None
        return {k: ledger[k] - self.ledger_start[k] for k in ledger}

    def convergence(self, t: int) -> list[dict[str, Any]]:
        """Per learning policy, over the window (float64 tensors per replica and advertiser):
        `tv` total variation between the policy at the window start and at its end, averaged
        over contexts weighted by the window auctions in each; `shift` |change in the expected
        grid point| (a multiplier, or an absolute bid in value units), same weights;
        `regret` the empirical regret per auction against the best fixed grid action per value
        bucket (money units, the utility the learner maximises); `regret_share` that regret as
        a share of the spread between the best and worst fixed action (0 to 1); `observations` the
        window auctions it rests on (rounds, for an entry rule: role "entry", whose two actions
        are staying out and entering, and whose `tv` and `shift` are the change in the
        probability of entering). Each value is an [R, A] tensor; `regret` and `regret_share`
        are NaN where they cannot be known: an entry rule under bandit feedback (its gain is
        seen only on the rounds it entered), or a policy whose family gave no grid feedback on
        some window round."""
        out = []
        for tr in self.tracks:
            end = tr.policy.strategy.policy(t).double()
            w = tr.count / tr.count.sum(-1, keepdim=True).clamp_min(1)  # [R, A, C]
            tv = 0.5 * (end - tr.start).abs().sum(-1)
            grid = tr.policy.grid.double()
            shift = ((end - tr.start) * grid).sum(-1).abs()
            best = tr.grid.max(-1).values
            worst = tr.grid.min(-1).values
            n = tr.count.sum(-1).clamp_min(1)
            regret = (best - tr.own).sum(-1) / n
            spread = (best - worst).sum(-1) / n
            share = torch.where(spread > 0, regret / spread.clamp_min(1e-300), torch.zeros_like(regret))
            if int(tr.grid_seen) < self.rounds:  # a family that gave no grid on some window round
                regret = torch.full_like(regret, float("nan"))
                share = torch.full_like(share, float("nan"))
            out.append({"group": tr.group.name, "role": tr.role, "tv": (tv * w).sum(-1),
                        "shift": (shift * w).sum(-1), "regret": regret, "regret_share": share,
                        "observations": tr.count.sum(-1)})
        for et in self.entry_tracks.values():  # two actions: stay out (worth 0) or enter
            moved = (et.rule.enter_probability(t).double() - et.start).abs()
            n = et.rounds.clamp_min(1)
            best = et.gain.clamp_min(0.0)
            regret = (best - et.realised) / n
            spread = et.gain.abs() / n
            share = torch.where(spread > 0, regret / spread.clamp_min(1e-300),
                                torch.zeros_like(regret))
            if not self.full:  # the gain is seen only on rounds entered: no regret to speak of
                regret = torch.full_like(regret, float("nan"))
                share = torch.full_like(share, float("nan"))
            out.append({"group": et.group.name, "role": "entry", "tv": moved, "shift": moved,
                        "regret": regret, "regret_share": share, "observations": et.rounds})
        return out

    def bid_function(self) -> list[dict[str, Any]]:
        """Per learning policy and value bucket, averaged over the window's rounds: the expected
        grid point `action` [R, A, C] (the bid or report multiplier, or the absolute bid), the
        auctions in the bucket `count` and the units won there `won` [R, A, C]; with the
        bucket's value range (`low`, `high`, lists of C floats) and whether the grid is
        absolute."""
        out = []
        for tr in self.tracks:
            p = tr.policy
            mean_policy = tr.policy_sum / max(self.rounds, 1)
            action = (mean_policy * p.grid.double()).sum(-1)
            C = p.C
            edges = [p.low + p.width * c / C for c in range(C + 1)]
            out.append({"group": tr.group.name, "role": tr.role, "absolute": bool(p.absolute),
                        "low": edges[:-1], "high": edges[1:], "action": action,
                        "count": tr.count, "won": tr.won})
        return out

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Tensor]:
        if not self.available:
            return {}
        state: dict[str, Tensor] = {"rounds": torch.tensor(self.rounds),
                                    "first": torch.tensor(self.first)}
        if self.ledger_start is not None:
            state.update({f"ledger.{k}": v for k, v in self.ledger_start.items()})
        for i, tr in enumerate(self.tracks):
            state.update({f"{i}.{name}": getattr(tr, name) for name in _Track.names})
        for i, et in self.entry_tracks.items():
            state.update({f"entry{i}.{name}": getattr(et, name) for name in _EntryTrack.names})
        return state

    def load_state_dict(self, state: dict[str, Tensor], step: int) -> None:
        """Restore the sums of a checkpoint taken after round `step`. A checkpoint from before
        the window needs nothing; one inside a window that started elsewhere (the run was
        extended) makes the diagnostics unavailable."""
        if step < self.first:
            return  # the window has not started: the sums are still zero
        if not state or int(state["first"]) != self.first:
            self.available = False
            self.why = (f"the run was extended past the start of its summary window (round "
                        f"{self.first}) and the window's first rounds were not tracked")
            return
        self.rounds = int(state["rounds"])
        device = next(iter(self._ledger_state().values())).device
        ledger = {k[7:]: v.to(device) for k, v in state.items() if k.startswith("ledger.")}
        self.ledger_start = ledger or None
        for i, tr in enumerate(self.tracks):
            for name in _Track.names:
                getattr(tr, name).copy_(state[f"{i}.{name}"])
        for i, et in self.entry_tracks.items():
            for name in _EntryTrack.names:
                getattr(et, name).copy_(state[f"entry{i}.{name}"])
