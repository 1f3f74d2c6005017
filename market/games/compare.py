"""`genmarket compare`: run every profile of an empirical game, write the game folder, analyse it.

The roles (advertiser groups and the strategies their players may play) come from `roles`. A
profile says how many players of each role play each strategy. Every profile is a scenario of
its own (the role's group split into one group per strategy played) run with `seeds` replicas
batched in one run; a strategy's payoff sample in a profile and seed is the mean utility per
auction of its players over the run's summary window (the last 10% of rounds), in the
scenario's value (or reward) units. Its outcomes are every metric of the run's metrics.parquet
(whatever the auction family measures), averaged over the same window per seed.

Game folder:

    manifest.json        scenario, roles (players, strategies), seeds, reduction, versions
    profiles/<slug>/     the run folder of each profile (metrics and figures across seeds)
    profiles/<slug>.parquet, <slug>.outcomes.parquet   its payoff samples and outcomes, written
                         when it finishes (a rerun of the same command skips it)
    game.parquet         tidy payoff samples: profile, role, strategy, count, seed, payoff
    outcomes.parquet     per profile and seed: the family's metrics of its run (revenue, welfare, ...)
    game.json            gameanalysis-style sample game;  payoff_table.csv  OpenSpiel's table
    analysis.json        equilibria (a continuum as one entry) with regret and bootstrap
                         intervals (none below bootstrap.MIN_SEEDS seeds, with the reason), pure
                         regrets, dominated strategies, alpha-rank, the max-welfare and
                         max-revenue profiles, and the tolerances and bootstrap settings used
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genmarket.market.engine.seam import family_of
from genmarket.market.games.bootstrap import MIN_SEEDS, bootstrap_regret, too_few_seeds
from genmarket.market.games.dominance import dominated_strategies
from genmarket.market.games.game import (
    Game,
    all_profiles,
    profile_id,
    to_gameanalysis_json,
    to_openspiel_hpt,
)
from genmarket.market.games.graph import alpha_rank, deviation_graph
from genmarket.market.games.nash import (
    MERGE_TOL,
    REGRET_TOL,
    SEGMENT_CHECKS,
    SEGMENT_NOISE,
    equilibria,
)
from genmarket.market.games.reduction import dpr_game, dpr_profiles
from genmarket.market.games.regret import PURE_REGRET_NOTE, pure_regrets, regret
from genmarket.market.games.roles import Role, role_spec
from genmarket.market.games.submit import submit_local, submit_ray
from genmarket.market.running.diagnose import game_convergence
from genmarket.market.running.folder import (
    RunFolderError,
    package_versions,
    write_json,
    write_parquet,
)
from genmarket.market.running.lock import folder_lock
from genmarket.market.running.progress import Bars
from genmarket.market.running.runner import run_scenario
from genmarket.market.running.summary import summary_window
from genmarket.market.scenario import Scenario, ScenarioError, validate_scenario

__all__ = ["profile_scenario", "profile_slug", "run_compare"]

MAX_PROFILES = 400


def profile_scenario(base: dict[str, Any], roles: list[Role], counts: dict[str, dict[str, int]],
                     seeds: int) -> dict[str, Any]:
    """The scenario mapping of one profile: each role's group split into one group per strategy
    played (named `<group>__<strategy>`), `seeds` replicas."""
    d = copy.deepcopy(base)
    d["replicas"] = seeds
    d.pop("variants", None)
    d.setdefault("metrics", {})["agents"] = True  # payoffs are read from genmarket.agents.parquet
    by_name = {r.name: r for r in roles}
    groups = []
    for g in d["advertisers"]:
        role = by_name.get(g["group"])
        if role is None:
            groups.append(g)
            continue
        names = g.get("names")
        taken = 0
        for strategy, count in counts[role.name].items():
            if count == 0:
                continue
            sub = copy.deepcopy(g)
            sub.update(group=f"{role.name}__{strategy}", count=count)
            sub[role.field] = copy.deepcopy(role.strategies[strategy])
            if names:
                sub["names"] = names[taken:taken + count]
            taken += count
            groups.append(sub)
    d["advertisers"] = groups
    return d


def profile_slug(profile: str) -> str:
    """The file and folder name of a profile id under the game folder's profiles/."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", profile).strip("-")


def run_profile(scenario: dict[str, Any], folder: str, profile: str,
                roles: list[Role]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run one profile into `folder` (resuming what is there) and return (payoff rows, outcome
    rows). Runs in a worker process (or this one with one worker): one torch thread."""
    torch.set_num_threads(1)
    sc = validate_scenario(scenario, f"profile {profile}")
    path = Path(folder)
    res = run_scenario(sc, path, resume=(path / "manifest.json").exists(), figures=False)
    # every round of the summary window, from the ledger (window.parquet); the collected rounds
    # only where a run has no such file (extended past its window start)
    window = res.folder / "window.parquet"
    agents = (pd.read_parquet(window, columns=["replica", "group", "agent", "utility"])
              if window.exists() else summary_window(pd.read_parquet(
                  res.folder / "agents.parquet",
                  columns=["step", "replica", "group", "agent", "utility"]), sc.steps))
    metrics = summary_window(pd.read_parquet(res.folder / "metrics.parquet"), sc.steps)
    rows = []
    for role in roles:
        for strategy in role.strategies:
            group = f"{role.name}__{strategy}"
            sel = agents[agents["group"] == group]
            if sel.empty:
                continue
            count = int(sel["agent"].nunique())
            for seed, pay in sel.groupby("replica")["utility"].mean().items():
                rows.append((profile, role.name, strategy, count, int(seed), float(pay)))
    payoffs = pd.DataFrame(rows, columns=["profile", "role", "strategy", "count", "seed", "payoff"])
    # the family's own metrics (not the per-group entry rates, whose groups differ by profile)
    cols = [m.name for m in family_of(sc.mechanism.kind).metrics if m.name in metrics]
    outcomes = metrics.groupby("replica")[cols].mean().reset_index().rename(columns={"replica": "seed"})
    outcomes.insert(0, "profile", profile)
    return payoffs, outcomes


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """`path: old vs new` for every leaf where two manifests differ (nested keys joined by `.`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(f"{sub}: (absent) vs {json.dumps(new[k])}")
            elif k not in new:
                out.append(f"{sub}: {json.dumps(old[k])} vs (absent)")
            else:
                out += _differences(old[k], new[k], sub)
        return out
    return [] if old == new else [f"{path}: {json.dumps(old)} vs {json.dumps(new)}"]


def plan_game(scenario: Scenario, roles: list[Role], out: str | Path, seeds: int = 5,
              reduce: dict[str, int] | None = None, command: list[str] | None = None
              ) -> dict[str, Any]:
    """Check a game before anything is written: the scenario is a repeated market, `reduce` names
    roles with a valid player count, the profiles are few enough and every profile scenario
    validates, and `out` holds no different game. Returns {"manifest", "reduce" (every role's
    count, or None), "jobs" (every profile's (scenario, folder, profile id, roles))}. Raises
    ValueError (bad input) or RunFolderError (`out` holds another game, naming what differs)."""
    if scenario.experiment is not None:
        raise ValueError("compare needs a repeated market, not a one-shot [experiment]")
    if seeds < 1:
        raise ValueError(f"--seeds = {seeds}: must be >= 1")
    out = Path(out)
    base = scenario.model_dump(mode="python", exclude_unset=True)
    spec = role_spec(roles)
    if reduce:
        unknown = sorted(set(reduce) - set(spec))
        if unknown:
            raise ValueError(f"--reduce {unknown[0]}: not a role of this game ({', '.join(spec)})")
        reduce = {r: reduce.get(r, n) for r, (_, n) in spec.items()}
        try:
            needed = dpr_profiles(spec, reduce)
        except ValueError as exc:
            players = ", ".join(f"{r} {n}" for r, (_, n) in spec.items())
            raise ValueError(f"--reduce {reduce}: {exc} (players: {players})") from None
        full = np.unique(np.concatenate(list(needed.values())), axis=0)
    else:
        full = all_profiles(spec)
    if len(full) > MAX_PROFILES:
        raise ValueError(f"{len(full)} profiles to simulate (more than {MAX_PROFILES}): reduce the "
                         "players per role with --reduce ROLE=N (deviation-preserving reduction)")
    jobs = []
    for row in full:
        pid = profile_id(spec, row)
        counts, at = {}, 0
        for r, (strategies, _) in spec.items():
            counts[r] = {st: int(row[at + k]) for k, st in enumerate(strategies)}
            at += len(strategies)
        d = profile_scenario(base, roles, counts, seeds)
        try:
            validate_scenario(d, f"profile {pid}")
        except ScenarioError as exc:
            raise ValueError(f"profile {pid}: {exc}") from None
        jobs.append((d, str(out / "profiles" / profile_slug(pid)), pid, roles))
    manifest = json.loads(json.dumps({  # as it reads back from the file
        "scenario": scenario.model_dump(mode="json"),
        "roles": {r.name: {"players": r.players, "field": r.field, "strategies": r.strategies}
                  for r in roles},
        "seeds": seeds, "reduction": reduce, "versions": package_versions(), "command": command or [],
    }))
    _same_game(out, manifest)
    return {"manifest": manifest, "reduce": reduce, "jobs": jobs, "all": len(all_profiles(spec))}


def _same_game(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse a game folder `out` whose manifest.json is another game's (RunFolderError naming
    every field that differs) or no game manifest at all."""
    path = out / "manifest.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc}): the game folder is damaged; "
                             "use another --out") from None
    if not isinstance(old, dict):
        raise RunFolderError(f"{path}: not a game manifest: use another --out")
    keys = ("scenario", "roles", "seeds", "reduction")
    old, new = {k: old.get(k) for k in keys}, {k: manifest[k] for k in keys}
    for side in (old, new):  # compiled or eager rounds give the same numbers bit for bit
        if isinstance(side["scenario"], dict):
            side["scenario"] = {k: v for k, v in side["scenario"].items()
                                if k not in ("compile", "compile_rounds")}
    diff = _differences(old, new)
    if diff:
        shown = diff[:8] + ([f"... and {len(diff) - 8} more"] if len(diff) > 8 else [])
        raise RunFolderError(f"{out} holds a different game (in that folder vs this command):\n  "
                             + "\n  ".join(shown) + "\nuse another --out, or remove the folder")


def run_compare(scenario: Scenario, roles: list[Role], out: str | Path, seeds: int = 5,
                backend: str = "local", workers: int = 1, reduce: dict[str, int] | None = None,
                retries: int = 1, progress: bool = False, command: list[str] | None = None
                ) -> dict[str, Any]:
    """Simulate every profile (skipping those already in `out`), assemble the game, analyse it.
    Returns the analysis dict (also written to analysis.json). A scenario with `[[variants]]`
    gives one game per variant in `out/<variant>/`; the result then maps variant -> analysis.
    Everything is checked (`plan_game`, every variant) before the first file is written; the
    game folder is then locked (`lock.folder_lock`) until the game is analysed: another genmarket
    process on it is refused with RunFolderError."""
    if scenario.variants:
        subs = scenario.variant_scenarios()
        for name, sub in subs:  # every variant's game checked before any folder is made
            plan_game(sub, roles, Path(out) / name, seeds, reduce, command)
        results = {}
        with folder_lock(out):
            for name, sub in subs:
                results[name] = run_compare(sub, roles, Path(out) / name, seeds, backend,
                                            workers, reduce, retries, progress, command)
            write_json(Path(out) / "variants.json", {"variants": list(results)})
        return {"variants": results}

    out = Path(out)
    plan = plan_game(scenario, roles, out, seeds, reduce, command)
    with folder_lock(out):
        _same_game(out, plan["manifest"])  # again: another process may have written it since
        return _play(out, plan, roles, backend, workers, retries, progress)


def _play(out: Path, plan: dict[str, Any], roles: list[Role], backend: str, workers: int,
          retries: int, progress: bool) -> dict[str, Any]:
    """`run_compare` for one game planned by `plan_game`, its folder `out` locked by the caller:
    run the profiles not yet in `out`, then assemble and analyse the game. Returns the analysis."""
    reduce = plan["reduce"]
    (out / "profiles").mkdir(exist_ok=True)
    write_json(out / "manifest.json", plan["manifest"])
    if reduce and progress:
        print(f"deviation-preserving reduction to {reduce} players: {len(plan['jobs'])} profiles "
              f"to simulate instead of {plan['all']}", flush=True)
    jobs = [job for job in plan["jobs"]
            if not (out / "profiles" / f"{profile_slug(job[2])}.parquet").exists()]
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    with Bars(progress) as bars:  # k/N profiles; the finished ones (resumed) count as done
        total = len(plan["jobs"])
        task = bars.add("profiles simulated", total, "profiles", completed=total - len(jobs))
        for _ in range(retries + 1):  # a failed profile is started afresh `retries` times
            submit = submit_ray if backend == "ray" else submit_local
            again = []
            for job, result, exc in submit(run_profile, jobs, max(1, workers)):
                pid = job[2]
                if exc is not None:
                    failed[pid] = f"{type(exc).__name__}: {exc}"
                    shutil.rmtree(job[1], ignore_errors=True)  # start that profile afresh
                    again.append(job)
                    continue
                failed.pop(pid, None)
                payoffs, outcomes = result
                slug = profile_slug(pid)
                write_parquet(outcomes, out / "profiles" / f"{slug}.outcomes.parquet")
                write_parquet(payoffs, out / "profiles" / f"{slug}.parquet")  # last: marks it done
                bars.advance(task)
                if progress:
                    print(f"  {pid}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
            jobs = again
            if not jobs:
                break
    if failed:
        write_json(out / "failed.json", failed)
        raise RuntimeError(f"{len(failed)} profile(s) failed (see {out / 'failed.json'}): "
                           + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3]))
    return assemble(out, roles, reduce)


def assemble(out: Path, roles: list[Role], reduce: dict[str, int] | None) -> dict[str, Any]:
    """Read every profile's samples, write the game files and analysis.json; return the analysis."""
    files = sorted((out / "profiles").glob("*.parquet"))
    tidy = pd.concat([pd.read_parquet(f) for f in files if not f.name.endswith(".outcomes.parquet")],
                     ignore_index=True)
    outcomes = pd.concat([pd.read_parquet(f) for f in files if f.name.endswith(".outcomes.parquet")],
                         ignore_index=True)
    write_parquet(tidy, out / "game.parquet")
    write_parquet(outcomes, out / "outcomes.parquet")
    game = Game.from_tidy(tidy, role_spec(roles))
    if reduce:
        game = dpr_game(game, reduce)
    (out / "game.json").write_text(json.dumps(to_gameanalysis_json(game), indent=1) + "\n")
    to_openspiel_hpt(game).to_csv(out / "payoff_table.csv", index=False)
    analysis = analyse(game, outcomes)
    analysis["convergence"] = game_convergence(out / "profiles")
    write_json(out / "analysis.json", analysis)
    return analysis


def analyse(game, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Equilibria (with regret and its 95% bootstrap interval where there are enough seeds;
    a continuum of equilibria as one entry), pure regrets, dominated strategies, alpha-rank,
    deviation edges and the max-welfare / max-revenue profiles; and the settings all of these
    rest on (`equilibrium_search`, `bootstrap`)."""
    def mixture(m):
        out, at = {}, 0
        for role, strategies in zip(game.roles, game.strategies, strict=True):
            out[role] = {s: float(m[at + k]) for k, s in enumerate(strategies)}
            at += len(strategies)
        return out

    # seed k of every profile draws the same values and auctions: resample seeds jointly
    seeds = sorted({s.shape[1] for s in game.samples})
    paired = len(seeds) == 1
    few = too_few_seeds(game)
    resamples = 1000
    eqs = []
    for eq in equilibria(game):
        entry = {"kind": eq.kind, "mixture": mixture(eq.mixture), "regret": eq.regret}
        if few:
            entry |= {"regret_ci95": None, "regret_ci_note": few}
        else:
            _, lo, hi = bootstrap_regret(game, eq.mixture, n_boot=resamples, paired=paired)
            entry["regret_ci95"] = [float(lo), float(hi)]
        entry["support"] = {k: list(v) for k, v in eq.support.items()}
        if eq.kind == "continuum":
            low, high = mixture(eq.low), mixture(eq.high)
            entry |= {"points": len(eq.points),
                      "regret_max": float(np.max(regret(game, eq.points))),
                      "range": {r: {s: [low[r][s], high[r][s]] for s in low[r]} for r in low},
                      "extremes": [mixture(x) for x in eq.extremes()]}
        eqs.append(entry)
    graph = deviation_graph(game)
    means = outcomes.groupby("profile").mean(numeric_only=True)
    pure = pure_regrets(game)
    return {
        "equilibria": eqs,
        "equilibrium_search": {
            "regret_tolerance": REGRET_TOL, "merge_tolerance": MERGE_TOL,
            "merge_distance": "L1 over all roles' strategy probabilities",
            "continuum": f"equilibria joined when {SEGMENT_CHECKS} evenly spaced points of the "
                         "segment between them all have no more regret than the worse of its "
                         f"two ends (up to {SEGMENT_NOISE:g} of the payoff scale); each "
                         "connected group is one entry of kind 'continuum'"},
        "bootstrap": {"level": 0.95, "method": "percentile", "resamples": resamples,
                      "paired": paired, "seeds": seeds[0] if seeds else 0,
                      "min_seeds": MIN_SEEDS} | ({"note": few} if few else {}),
        "pure_regrets": {pid: (None if not np.isfinite(r) else float(r))
                         for pid, r in zip(game.ids, pure, strict=True)},
        "pure_regrets_note": PURE_REGRET_NOTE,
        "dominated": dominated_strategies(game),
        "alpha_rank": {k: float(v) for k, v in alpha_rank(game).items()},
        "deviation_edges": [[a, b, float(d.get("gain", np.nan))] for a, b, d in graph.edges(data=True)],
        "max_welfare": str(means["welfare"].idxmax()) if "welfare" in means else None,
        "max_revenue": str(means["revenue"].idxmax()) if "revenue" in means else None,
        "outcomes": {pid: {k: float(v) for k, v in row.items() if np.isfinite(v)}
                     for pid, row in means.iterrows()},
    }
