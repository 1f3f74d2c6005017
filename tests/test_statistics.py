"""Honest statistics: t-intervals over replicas with their count, no bootstrap interval below
MIN_SEEDS seeds, equilibria merged and continua reported once, and what a pure regret means."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from genmarket.market import games as egta
from genmarket.market.cli import _equilibria_table, _summary_table
from genmarket.market.engine.seam import family_of
from genmarket.market.games.bootstrap import MIN_SEEDS, too_few_seeds
from genmarket.market.games.compare import analyse
from genmarket.market.games.nash import MERGE_TOL, REGRET_TOL
from genmarket.market.reports.game_text import equilibria_table, game_sentences, pure_regret_words
from genmarket.market.running.summary import half_width95, summarize, t_half_width

PD = [[3.0, 0.0], [5.0, 1.0]]  # C, D


def _render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


# ---------------------------------------------------------------- t-intervals over replicas


def test_t_half_width_matches_closed_forms():
    # 1 degree of freedom: Student t is Cauchy, t_0.975 = tan(0.475 pi); [0, 1] has se 0.5
    assert half_width95([0.0, 1.0]) == pytest.approx(math.tan(0.475 * math.pi) * 0.5, rel=1e-12)
    assert half_width95([0.0, 1.0]) == pytest.approx(12.7062 * 0.5, rel=1e-5)
    # 2 degrees of freedom: t_p = (2p - 1) / sqrt(2 p (1 - p)); [1, 2, 3] has sd 1
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert half_width95(pd.Series([1.0, 2.0, 3.0])) == pytest.approx(t2 / math.sqrt(3), rel=1e-12)
    # n = 4: t_0.975,3 = 3.1824; [1, 2, 3, 4] has sd sqrt(5/3)
    assert t_half_width([1, 2, 3, 4]) == (pytest.approx(3.18245 * math.sqrt(5 / 3) / 2, rel=1e-5), 4)


def test_no_interval_below_two_values():
    assert half_width95([]) is None and half_width95([0.3]) is None
    assert t_half_width(pd.Series([0.3, np.nan, np.inf])) == (None, 1)  # non-finite left out
    assert t_half_width([0.3, np.nan, 0.5])[1] == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40).filter(lambda x: np.std(x) > 1e-6))
def test_t_interval_is_wider_than_the_normal_one_and_narrows_towards_it(x):
    """t_{0.975, n-1} > 1.96 and falls with n: the same sample doubled (twice the values, about
    the same sd) gets a factor closer to 1.96, within 1% of it from n = 200 on."""
    def factor(v):
        v = np.asarray(v)
        return half_width95(v) / (v.std(ddof=1) / np.sqrt(len(v)))

    f, f2 = factor(x), factor(x + x)
    assert f > 1.96 and 1.96 < f2 < f
    big = np.tile(x, -(-200 // len(x)))
    assert factor(big) == pytest.approx(1.96, rel=0.01)


def test_t_interval_covers_at_its_level_where_the_normal_one_does_not():
    """4 normal replicas, 4000 repetitions: the t-interval covers the mean ~95% of the time, the
    1.96-based one only ~88% (what half_width95 gave before)."""
    x = np.random.default_rng(0).normal(size=(4000, 4))
    se = x.std(1, ddof=1) / 2
    t = np.array([half_width95(r) for r in x])
    cover_t = (np.abs(x.mean(1)) <= t).mean()
    cover_z = (np.abs(x.mean(1)) <= 1.96 * se).mean()
    assert 0.94 <= cover_t <= 0.96 and cover_z < 0.9


def _metrics(replicas: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"step": s, "replica": r, "revenue": 0.5 + 0.1 * rng.normal(),
                          "welfare": 1.0 + 0.1 * rng.normal()}
                         for r in range(replicas) for s in range(1, 11)])


def test_summary_carries_the_count_its_intervals_rest_on():
    family = family_of("second_price")
    s = summarize(_metrics(4), None, 10, family)
    assert s["ci"] == {"level": 0.95, "method": "t", "n": 4, "unit": "replicas"}
    per_rep = _metrics(4).query("step == 10").groupby("replica")["revenue"].mean()
    assert s["ci95"]["revenue"] == pytest.approx(half_width95(per_rep))
    text = _render(_summary_table(s))
    assert "95% t-interval over 4 replicas" in text
    one = summarize(_metrics(1), None, 10, family)
    assert one["ci"]["n"] == 1 and one["ci95"] == {"revenue": None, "welfare": None}
    text = _render(_summary_table(one))
    assert "no interval (1 replica)" in text and "±" not in text and "0.0000 " not in text


# ---------------------------------------------------------------- bootstrap: enough seeds


def noisy_game(A, seeds, sd=0.1, seed=0) -> egta.Game:
    base = egta.Game.from_matrix(A, ["C", "D"] if len(A) == 2 else None)
    noise = np.random.default_rng(seed).normal(0, sd, (len(base.profiles), base.num_strategies, seeds))
    return egta.Game(base.roles, base.strategies, base.players, base.profiles,
                     list(base.payoffs[:, :, None] + noise), base.ids)


def _outcomes(game) -> pd.DataFrame:
    return pd.DataFrame({"profile": game.ids, "revenue": np.arange(len(game.ids), dtype=float)})


def test_too_few_seeds_give_no_bootstrap_interval_and_say_why():
    assert MIN_SEEDS == 5
    few = noisy_game(PD, 2)
    note = "2 seeds: at least 5 needed for a bootstrap interval"
    assert too_few_seeds(few) == note and too_few_seeds(noisy_game(PD, 5)) is None
    with pytest.raises(ValueError, match="at least 5 needed"):
        egta.bootstrap_regret(few, [0, 1])
    a = analyse(few, _outcomes(few))
    (eq,) = a["equilibria"]
    assert eq["regret_ci95"] is None and eq["regret_ci_note"] == note
    assert a["bootstrap"]["seeds"] == 2 and a["bootstrap"]["min_seeds"] == 5
    assert a["bootstrap"]["note"] == note
    family = family_of("second_price")
    manifest = {"roles": {"players": {"players": 2, "strategies": {}}}, "seeds": 2}
    text = " ".join(game_sentences(a, manifest, None, family))
    assert f"no interval: {note}" in text and "[" not in text.split("equilibrium (")[1][:40]
    assert f"none ({note})" in equilibria_table(a)["95% interval"].tolist()
    cli = _render(_equilibria_table(a, "", 2))
    assert note in cli and "[0.0000, 0.0000]" not in cli


def test_enough_seeds_give_a_bootstrap_interval_with_its_count():
    game = noisy_game(PD, 6)
    a = analyse(game, _outcomes(game))
    (eq,) = a["equilibria"]
    lo, hi = eq["regret_ci95"]
    assert lo <= eq["regret"] + 1e-12 and eq["regret"] <= hi + 1e-12 and "regret_ci_note" not in eq
    assert a["bootstrap"] == {"level": 0.95, "method": "percentile", "resamples": 1000,
                              "paired": True, "seeds": 6, "min_seeds": 5}
    text = " ".join(game_sentences(a, {"roles": {}}, None, family_of("second_price")))
    assert "95% bootstrap interval over 6 seeds" in text
    assert "over 6 seeds" in _render(_equilibria_table(a, "", 6))


# ---------------------------------------------------------------- equilibria: merged, continua


def _distinct(eqs) -> float:
    """The least L1 distance between points of two different reported equilibria."""
    sets = [e.points for e in eqs]
    return min((np.abs(a[:, None] - b[None]).sum(-1).min() for a, b in itertools.combinations(sets, 2)),
               default=np.inf)


def test_payoff_identical_strategies_are_one_continuum():
    """Prisoner's dilemma with defect twice (D and E pay the same): every mixture of D and E
    is an equilibrium, a whole segment, reported once."""
    game = egta.Game.from_matrix([[3.0, 0.0, 0.0], [5.0, 1.0, 1.0], [5.0, 1.0, 1.0]], list("CDE"))
    (eq,) = egta.equilibria(game)
    assert eq.kind == "continuum" and len(eq.points) >= 2
    np.testing.assert_allclose(eq.low, [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(eq.high, [0, 1, 1], atol=1e-9)
    assert eq.support == {"players": ["D", "E"]}
    assert (egta.regret(game, eq.points) <= REGRET_TOL).all()
    ends = {tuple(np.round(x, 9)) for x in eq.extremes()}
    assert ends == {(0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}
    a = analyse(game, _outcomes(game))
    (entry,) = a["equilibria"]
    assert entry["kind"] == "continuum" and entry["points"] == len(eq.points)
    assert entry["range"]["players"] == {"C": [0.0, 0.0], "D": [0.0, 1.0], "E": [0.0, 1.0]}
    assert a["equilibrium_search"]["merge_tolerance"] == MERGE_TOL
    text = " ".join(game_sentences(a, {"roles": {}}, None, family_of("second_price")))
    assert "A continuum of equilibria: players: D 0.00–1.00, E 0.00–1.00" in text
    assert "continuum" in _render(_equilibria_table(a, "", 1))


def test_delegation_like_bimatrix_continuum():
    """Two roles of one player: when row plays `over`, col is indifferent between `truthful`
    and `under` (the second-price delegation game's degenerate shape): one continuum, not
    one entry per point the searches stopped at."""
    roles = {"a": (["over", "truthful"], 1), "b": (["truthful", "under"], 1)}

    def pay(c):
        over = c[0]
        return np.array([0.2, 0.2 - 0.05 * c[2], 0.03 * (1 - over), 0.02 * (1 - over)])

    game = egta.Game.from_payoff_function(roles, pay)
    eqs = egta.equilibria(game)
    assert len(eqs) == 1 and eqs[0].kind == "continuum"
    np.testing.assert_allclose(eqs[0].low, [1, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(eqs[0].high, [1, 0, 1, 1], atol=1e-9)


def test_battle_of_the_sexes_has_exactly_three_isolated_equilibria():
    roles = {"row": (["a", "b"], 1), "col": (["a", "b"], 1)}

    def pay(c):
        meet_a, meet_b = c[0] * c[2], c[1] * c[3]
        return np.array([2 * meet_a, meet_b, meet_a, 2 * meet_b])

    eqs = egta.equilibria(egta.Game.from_payoff_function(roles, pay))
    assert len(eqs) == 3 and all(e.kind == "point" for e in eqs)


def test_two_strict_equilibria_close_in_payoff_are_not_one_continuum():
    """A symmetric coordination game whose pure equilibria are strict by only 0.002 (as the
    first-price reporting game's all-truthful and all-under-reporting are): every mixture
    between them has regret below REGRET_TOL, yet they are two strict equilibria with a mixed
    one at 1/2 between them, not a continuum."""
    game = egta.Game.from_matrix([[0.002, 0.0], [0.0, 0.002]], ["truthful", "under"])
    mid = np.array([[0.75, 0.25]])
    assert 0 < egta.regret(game, mid)[0] < REGRET_TOL  # the old joining rule's blind spot
    eqs = egta.equilibria(game)
    assert [e.kind for e in eqs] == ["point"] * 3
    found = sorted(tuple(np.round(e.mixture, 6)) for e in eqs)
    assert found == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_random_games_report_no_two_equilibria_within_the_tolerance(k, seed, bimatrix):
    rng = np.random.default_rng(seed)
    if bimatrix:
        roles = {"row": ([f"r{i}" for i in range(k)], 1), "col": ([f"c{i}" for i in range(k)], 1)}
        A, B = rng.normal(size=(2, k, k))
        game = egta.Game.from_payoff_function(
            roles, lambda c: np.concatenate([A @ c[k:], B.T @ c[:k]]))
    else:
        game = egta.Game.from_matrix(rng.normal(size=(k, k)))
    eqs = egta.equilibria(game, starts=10, iters=500)
    assert eqs, "every finite game has an equilibrium"
    assert _distinct(eqs) > MERGE_TOL
    for e in eqs:
        assert (egta.regret(game, e.points) <= REGRET_TOL + 1e-12).all()
        assert e.regret == pytest.approx(egta.regret(game, e.mixture), abs=1e-12)
        inner = np.abs(e.points[:, None] - e.points[None]).sum(-1)[np.triu_indices(len(e.points), 1)]
        assert (inner > MERGE_TOL).all()


# ---------------------------------------------------------------- what a pure regret means


def test_negative_pure_regret_is_a_strict_equilibrium_and_is_explained():
    game = noisy_game(PD, 5, sd=0.0)
    reg = dict(zip(game.ids, egta.pure_regrets(game), strict=True))
    assert reg["players: D=2"] == pytest.approx(-1.0)  # C against D earns 0 instead of 1
    assert egta.regret(game, [0, 1]) == pytest.approx(0.0)  # the same profile as a mixture
    words = pure_regret_words(-1.0, "value units")
    assert words == "every unilateral deviation loses at least 1.000 value units (a strict equilibrium)"
    assert "not an equilibrium" in pure_regret_words(0.5)
    assert "not a strict one" in pure_regret_words(0.0) and "not a strict one" in pure_regret_words(-1e-5)
    a = analyse(game, _outcomes(game))
    assert "negative: every unilateral deviation loses" in a["pure_regrets_note"]
    text = " ".join(game_sentences(a, {"roles": {}}, None, family_of("second_price")))
    assert "'players: D=2' has the least regret, -1.000" in text
    assert "loses at least 1.000" in text and "never below 0" in text
    cli = _render(_equilibria_table(a, "", 5))
    assert "'players: D=2': regret -1.0000: every unilateral deviation loses at least" in cli
