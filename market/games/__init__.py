"""Empirical role-symmetric games: payoff tables, regret, equilibria, bootstrap, α-Rank, DPR.

A profile says, for each role r (advertiser group) with N_r players and strategies S_r, how many
players play each strategy. Strategies of all roles are concatenated in role order into one axis
of size S, so a profile is an int vector [S] and a role-symmetric mixture a float vector [S]
(one probability vector per role). Payoff samples (one per seed) are kept per profile as
gameanalysis' SampleGame keeps them, so regret comes with a bootstrap interval. Every payoff,
regret and gain is in the payoff units of the game, whatever the compare command measured.

Modules: `game` (profiles, `Game`, exports), `regret`, `nash` (equilibria), `dominance`,
`bootstrap`, `graph` (response graph, α-Rank), `reduction` (DPR); `roles` and `compare` run
`genmarket compare` (import them from their modules: they are not re-exported here).
"""

from genmarket.market.games.bootstrap import bootstrap_regret
from genmarket.market.games.dominance import dominated_strategies
from genmarket.market.games.game import (
    Game,
    Roles,
    all_profiles,
    profile_id,
    to_gameanalysis_json,
    to_openspiel_hpt,
)
from genmarket.market.games.graph import alpha_rank, deviation_graph
from genmarket.market.games.nash import (
    Equilibrium,
    equilibria,
    regret_matching,
    replicator_dynamics,
    support_enumeration,
)
from genmarket.market.games.reduction import dpr_game, dpr_profiles
from genmarket.market.games.regret import mixture_deviation_payoffs, pure_regrets, regret

__all__ = [
    "Equilibrium",
    "Game",
    "Roles",
    "all_profiles",
    "alpha_rank",
    "bootstrap_regret",
    "deviation_graph",
    "dominated_strategies",
    "dpr_game",
    "dpr_profiles",
    "equilibria",
    "mixture_deviation_payoffs",
    "profile_id",
    "pure_regrets",
    "regret",
    "regret_matching",
    "replicator_dynamics",
    "support_enumeration",
    "to_gameanalysis_json",
    "to_openspiel_hpt",
]
