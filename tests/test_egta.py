"""Empirical-game analysis (market/games/) on games whose answers are known."""

import itertools
import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from genmarket.market import games as egta

PD = [[3.0, 0.0], [5.0, 1.0]]  # row player's payoffs, strategies C, D
RPS = [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]


def pennies_game() -> egta.Game:
    """Matching pennies between two roles of 2 players: 'even' wants to match 'odd'."""
    roles = {"even": (["H", "T"], 2), "odd": (["H", "T"], 2)}

    def pay(c):
        lead = (c[2] - c[3]) / 2, (c[0] - c[1]) / 2  # how far the other role leans to H
        return np.array([lead[0], -lead[0], -lead[1], lead[1]])

    return egta.Game.from_payoff_function(roles, pay)


def noisy_game(A, rng, sd, seeds) -> egta.Game:
    """The symmetric 2-player game A with `seeds` Gaussian payoff samples per profile."""
    base = egta.Game.from_matrix(A)
    noise = rng.normal(0, sd, (len(base.profiles), base.num_strategies, seeds))
    samples = base.payoffs[:, :, None] + noise  # NaN stays NaN where the count is 0
    return egta.Game(base.roles, base.strategies, base.players, base.profiles, list(samples), base.ids)


def test_profiles_and_ids():
    roles = {"bidders": (["shade", "truthful"], 3), "sellers": (["a", "b", "c"], 2)}
    prof = egta.all_profiles(roles)
    assert prof.shape == (comb(4, 1) * comb(4, 2), 5)
    assert len(np.unique(prof, axis=0)) == len(prof)
    assert (prof[:, :2].sum(1) == 3).all() and (prof[:, 2:].sum(1) == 2).all()
    assert egta.profile_id(roles, [1, 2, 0, 2, 0]) == "bidders: shade=1 truthful=2; sellers: b=2"


def test_prisoners_dilemma_defect_is_the_only_equilibrium():
    game = egta.Game.from_matrix(PD, ["C", "D"])
    eqs = egta.equilibria(game)
    assert len(eqs) == 1
    np.testing.assert_allclose(eqs[0].mixture, [0, 1], atol=1e-9)
    assert eqs[0].regret < 1e-9 and eqs[0].support == {"players": ["D"]}
    assert egta.dominated_strategies(game) == {"players": ["C"]}
    reg = dict(zip(game.ids, egta.pure_regrets(game), strict=True))
    assert reg["players: D=2"] == -1.0 and reg["players: C=2"] == 2.0 and reg["players: C=1 D=1"] == 1.0
    assert egta.regret(game, [1, 0]) == pytest.approx(2.0)


def test_rock_paper_scissors_is_uniform_and_has_no_pure_equilibrium():
    game = egta.Game.from_matrix(RPS, list("RPS"))
    eqs = egta.equilibria(game)
    assert len(eqs) == 1
    np.testing.assert_allclose(eqs[0].mixture, np.full(3, 1 / 3), atol=1e-6)
    assert (egta.regret(game, np.eye(3)) >= 1.0).all()
    assert (egta.pure_regrets(game) > 0).all()
    start = np.array([0.6, 0.3, 0.1])
    assert egta.regret(game, egta.replicator_dynamics(game, start)) > 0.1  # it cycles outward
    rm = egta.regret_matching(game, start)
    assert np.abs(rm - 1 / 3).sum() < 0.02 and egta.regret(game, rm) < 0.01
    se = egta.support_enumeration(game)
    assert len(se) == 1
    np.testing.assert_allclose(se[0], np.full(3, 1 / 3), atol=1e-12)


def test_coordination_game_has_two_pure_and_one_mixed_equilibrium():
    game = egta.Game.from_matrix([[2.0, 0.0], [0.0, 1.0]], ["a", "b"])
    found = sorted(tuple(np.round(e.mixture, 6)) for e in egta.equilibria(game))
    assert found == [(0.0, 1.0), (pytest.approx(1 / 3), pytest.approx(2 / 3)), (1.0, 0.0)]


def test_dominated_strategy_is_found_and_never_played():
    game = egta.Game.from_matrix([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 0.0]], ["a", "b", "c"])
    assert egta.dominated_strategies(game) == {"players": ["c"]}
    eqs = egta.equilibria(game)
    assert len(eqs) == 3 and all(e.mixture[2] < 1e-9 for e in eqs)
    # y beats x only against z, and z is dominated by y: iterated elimination removes both
    chain = egta.Game.from_matrix([[2.0, 2.0, 0.0], [1.0, 1.0, 3.0], [0.0, 0.0, 2.0]], list("xyz"))
    assert egta.dominated_strategies(chain) == {"players": ["z"]}
    assert egta.dominated_strategies(chain, iterated=True) == {"players": ["z", "y"]}


def test_bootstrap_interval_covers_the_true_regret():
    rng = np.random.default_rng(7)
    A = rng.normal(0, 2, (3, 3))
    mix = np.array([0.5, 0.3, 0.2])
    truth = egta.regret(egta.Game.from_matrix(A), mix)
    hits = []
    for _ in range(150):
        _, lo, hi = egta.bootstrap_regret(noisy_game(A, rng, 1.0, 20), mix, n_boot=400,
                                          seed=int(rng.integers(1 << 31)))
        hits.append(lo <= truth <= hi)
    assert np.mean(hits) >= 0.9


def test_bootstrap_interval_shrinks_to_the_point_without_noise():
    game = noisy_game(PD, np.random.default_rng(0), 0.0, 5)
    reg, lo, hi = egta.bootstrap_regret(game, [0.5, 0.5])  # D earns 3, the mixture 2.25
    assert reg == pytest.approx(0.75) and lo == pytest.approx(0.75) and hi == pytest.approx(0.75)


def test_matching_pennies_between_roles():
    game = pennies_game()
    eqs = egta.equilibria(game)
    assert len(eqs) == 1
    np.testing.assert_allclose(eqs[0].mixture, np.full(4, 0.5), atol=1e-9)
    rm = egta.regret_matching(game, [0.9, 0.1, 0.2, 0.8])
    assert np.abs(rm - 0.5).max() < 0.02
    assert egta.regret(game, np.full(4, 0.5)) == pytest.approx(0.0, abs=1e-12)
    assert egta.regret(game, [1, 0, 1, 0]) == pytest.approx(2.0)  # odd switches to T


def test_battle_of_the_sexes_as_a_bimatrix_game():
    roles = {"row": (["a", "b"], 1), "col": (["a", "b"], 1)}

    def pay(c):  # both like meeting; row prefers a, col prefers b
        meet_a, meet_b = c[0] * c[2], c[1] * c[3]
        return np.array([2 * meet_a, meet_b, meet_a, 2 * meet_b])

    game = egta.Game.from_payoff_function(roles, pay)
    mixed = egta.support_enumeration(game)
    assert len(mixed) == 3
    found = sorted(tuple(np.round(e.mixture, 9)) for e in egta.equilibria(game))
    assert found == [(0.0, 1.0, 0.0, 1.0), (pytest.approx(2 / 3), pytest.approx(1 / 3),
                                            pytest.approx(1 / 3), pytest.approx(2 / 3)), (1.0, 0.0, 1.0, 0.0)]
    with pytest.raises(ValueError, match="2 players"):
        egta.support_enumeration(pennies_game())


def test_deviation_payoffs_match_brute_force_over_opponents():
    roles = {"a": (["x", "y"], 3), "b": (["u", "v", "w"], 3)}
    rng = np.random.default_rng(1)
    prof = egta.all_profiles(roles)
    pays = np.where(prof > 0, rng.normal(size=prof.shape), np.nan)
    game = egta.Game(list(roles), [s for s, _ in roles.values()], [3, 3], prof,
                     list(pays[:, :, None]), [egta.profile_id(roles, p) for p in prof])
    mix = np.concatenate([rng.dirichlet(np.ones(2)), rng.dirichlet(np.ones(3))])
    role_of = np.array([0, 0, 1, 1, 1])
    index = {tuple(p): i for i, p in enumerate(prof)}
    expect = np.zeros(5)
    for s in range(5):
        others = [0] * 3 + [1] * 3  # players' roles, less the deviator
        others.remove(role_of[s])
        choices = [np.flatnonzero(role_of == r) for r in others]
        for picks in itertools.product(*choices):
            counts = np.bincount(list(picks) + [s], minlength=5)
            expect[s] += np.prod(mix[list(picks)]) * pays[index[tuple(counts)], s]
    np.testing.assert_allclose(egta.mixture_deviation_payoffs(game, mix), expect, rtol=1e-10)


def test_incomplete_game_names_the_missing_profiles():
    game = egta.Game.from_matrix(PD, ["C", "D"])
    part = game.restrict([True, True])
    part = egta.Game(part.roles, part.strategies, part.players, part.profiles[1:], part.samples[1:], part.ids[1:])
    assert not part.is_complete()
    with pytest.raises(ValueError, match="players: C=2"):
        egta.regret(part, [0.5, 0.5])
    assert np.isnan(egta.pure_regrets(part)[0])  # C=1 D=1 would move to the missing C=2


def test_dpr_of_a_linear_game_follows_the_formula():
    strats = ["a", "b", "c"]
    rng = np.random.default_rng(2)
    base, B = rng.normal(size=3), rng.normal(size=(3, 3))
    full = egta.Game.from_payoff_function({"all": (strats, 7)}, lambda c: base + B @ c)
    red = egta.dpr_game(full, {"all": 3})
    assert red.is_complete() and red.players == [3] and (red.profiles.sum(1) == 3).all()
    eye = np.eye(3)
    expect = np.array([[base[s] + B[s] @ (eye[s] + 3 * (p - eye[s])) for s in range(3)] for p in red.profiles])
    np.testing.assert_allclose(red.payoffs, np.where(red.profiles > 0, expect, np.nan))
    need = egta.dpr_profiles({"all": (strats, 7)}, {"all": 3})
    assert need["all: a=1 b=1 c=1"].tolist() == [[1, 3, 3], [3, 1, 3], [3, 3, 1]]
    with pytest.raises(ValueError, match="integral"):
        egta.dpr_profiles({"all": (strats, 6)}, {"all": 3})


def test_dpr_with_two_roles_scales_own_and_other_roles():
    roles = {"a": (["x", "y"], 4), "b": (["u", "v"], 4)}
    W = np.random.default_rng(3).normal(size=(4, 4))
    full = egta.Game.from_payoff_function(roles, lambda c: W @ c)
    red = egta.dpr_game(full, {"a": 2, "b": 2})
    for p, u in zip(red.profiles, red.payoffs, strict=True):
        for s in np.flatnonzero(p):
            own = slice(0, 2) if s < 2 else slice(2, 4)
            f = 2 * p  # the other role: N/n = 2 per reduced player
            f[own] = 3 * p[own]  # own role: (N-1)/(n-1) = 3 per other reduced player
            f[s] -= 2
            assert u[s] == pytest.approx(W[s] @ f)
    with pytest.raises(ValueError, match="roles"):
        egta.dpr_game(full, {"a": 3, "b": 2})


def test_tidy_round_trip_and_validation():
    roles = {"a": (["x", "y"], 2), "b": (["u", "v"], 1)}
    rng = np.random.default_rng(4)
    prof = egta.all_profiles(roles)
    rows = [(egta.profile_id(roles, p), r, s, int(c), seed, float(rng.normal()))
            for p in prof for seed in (11, 12, 13)
            for (r, s), c in zip([("a", "x"), ("a", "y"), ("b", "u"), ("b", "v")], p, strict=True) if c > 0]
    df = pd.DataFrame(rows, columns=["profile", "role", "strategy", "count", "seed", "payoff"])
    game = egta.Game.from_tidy(df, roles)
    assert game.is_complete() and game.profiles.shape == (6, 4)
    assert all(s.shape == (4, 3) for s in game.samples)
    pd.testing.assert_frame_equal(game.to_tidy(), df, check_dtype=False)
    with pytest.raises(ValueError, match="add up"):
        egta.Game.from_tidy(df.assign(count=df["count"] + 1), roles)
    with pytest.raises(ValueError, match="missing payoffs"):
        egta.Game.from_tidy(df.drop(index=1), roles)


def test_exports_have_the_right_rows_and_columns():
    game = noisy_game(RPS, np.random.default_rng(5), 0.1, 4)
    ga = json.loads(json.dumps(egta.to_gameanalysis_json(game)))
    assert ga["type"] == "samplegame.1"
    assert ga["roles"] == [{"name": "players", "strategies": ["s0", "s1", "s2"], "count": 2}]
    assert len(ga["profiles"]) == 6
    for prof, counts, samp in zip(ga["profiles"], game.profiles, game.samples, strict=True):
        entries = prof["players"]
        assert [c for _, c, _ in entries] == [int(c) for c in counts if c > 0]
        for strat, _, pays in entries:
            np.testing.assert_allclose(pays, samp[int(strat[1])])
    hpt = egta.to_openspiel_hpt(game)
    assert list(hpt.columns) == [f"count:s{i}" for i in range(3)] + [f"payoff:s{i}" for i in range(3)]
    assert hpt.shape == (6, 6) and (hpt.iloc[:, :3].sum(axis=1) == 2).all()
    np.testing.assert_allclose(hpt.iloc[:, 3:].to_numpy(), np.nan_to_num(game.payoffs))
    two = egta.to_openspiel_hpt(pennies_game())
    assert two.shape == (9, 8) and two.columns[0] == "even:count:H" and two.columns[-1] == "odd:payoff:T"


def test_gameanalysis_reads_the_json_back():
    gamereader = pytest.importorskip("gameanalysis.gamereader")
    try:  # gameanalysis 8.1 (its last release) calls scipy.special.comb positionally
        pytest.importorskip("gameanalysis.utils").comb(3, 2)
    except TypeError:
        pytest.skip("this gameanalysis does not run on this scipy")
    game = noisy_game(PD, np.random.default_rng(6), 0.5, 3)
    back = gamereader.loadj(egta.to_gameanalysis_json(game))
    np.testing.assert_allclose(back.deviation_payoffs(np.array([0.3, 0.7])),
                               egta.mixture_deviation_payoffs(game, [0.3, 0.7]))


def test_deviation_graph_edges_are_profitable_switches():
    game = egta.Game.from_matrix(RPS, list("RPS"))
    g = egta.deviation_graph(game)
    assert set(g.nodes) == set(game.ids)
    pos = {i: k for k, i in enumerate(game.ids)}
    labels = list("RPS")
    for a, b, d in g.edges(data=True):
        moved = game.profiles[pos[b]] - game.profiles[pos[a]]
        assert moved[labels.index(d["from"])] == -1 and moved[labels.index(d["to"])] == 1
        gain = game.payoffs[pos[b], labels.index(d["to"])] - game.payoffs[pos[a], labels.index(d["from"])]
        assert d["gain"] == pytest.approx(gain) and gain > 0
    assert g.number_of_edges() == 9  # one out of each R=2, P=2, S=2; two out of each mixed profile
    pd_graph = egta.deviation_graph(egta.Game.from_matrix(PD, ["C", "D"]))
    assert sorted(pd_graph.edges) == [("players: C=1 D=1", "players: D=2"), ("players: C=2", "players: C=1 D=1")]


def test_alpha_rank_concentrates_on_mutual_defection():
    game = egta.Game.from_matrix(PD, ["C", "D"])
    pi = egta.alpha_rank(game)
    assert pi.sum() == pytest.approx(1.0) and (pi >= 0).all()
    assert pi["players: D=2"] > 0.99
    flat = egta.alpha_rank(egta.Game.from_matrix(np.zeros((2, 2))), alpha=10.0)
    assert flat.min() > 0.1  # no selection: every profile is visited
    rps = egta.alpha_rank(egta.Game.from_matrix(RPS, list("RPS")))
    assert rps.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("n, k", [(1, 1), (3, 1), (3, 2), (4, 3), (2, 5)])
def test_every_profile_is_counted_once_one_strategy_included(n, k):
    """Stars and bars: C(n+k-1, k-1) distinct profiles, each putting all n players somewhere;
    with one strategy there is exactly one (it raised before)."""
    prof = egta.all_profiles({"r": ([f"s{i}" for i in range(k)], n)})
    assert prof.shape == (comb(n + k - 1, k - 1), k)
    assert (prof.sum(1) == n).all() and (prof >= 0).all()
    assert len({tuple(p) for p in prof}) == len(prof)


def test_a_one_strategy_game_is_analysed(tmp_path):
    """Everyone plays the one strategy: one profile, and it is the equilibrium."""
    from genmarket.market.games.compare import run_compare
    from genmarket.market.games.roles import make_roles
    from genmarket.market.scenario import validate_scenario

    sc = validate_scenario({"name": "one", "steps": 20, "auctions_per_step": 8,
                            "mechanism": {"kind": "second_price"},
                            "advertisers": [{"group": "b", "count": 2}], "metrics": {"every": 5}})
    analysis = run_compare(sc, make_roles(sc, [(None, "t=truthful")]), tmp_path / "g", seeds=2)
    (eq,) = analysis["equilibria"]
    assert eq["mixture"] == {"b": {"t": 1.0}}
    assert len(list((tmp_path / "g" / "profiles").glob("*.outcomes.parquet"))) == 1
