"""`genmarket view`: a scenario's market, live in the browser, the way Mesa models are watched.

The page is Mesa's own `SolaraViz` (Reset, play/pause, Step, a play interval and a render
interval, the round counter) over `LiveMarket`, the engine's `Market` with the parameters the
page may change: the variant (scenarios with `[[variants]]`), the mechanism kind (families with
several kinds, those the scenario validates with), the seed, the auctions per round and how
often metrics are collected. There is one plot per panel of the family's metric specifications,
with their labels, unit and reference lines: nothing here names a family or a metric.

`serve` checks everything a user can get wrong before any server starts (solara installed, the
scenario valid, a repeated market, its first round clears, the port free) and raises
`ViewError` with one line to print. Solara then imports `genmarket.market.view_app` (the page)
in this process; the scenario and device reach it through the `GENMARKET_VIEW` variable.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmarket.market.engine.market import Market
from genmarket.market.engine.seam import ENGINE_METRICS, Family, Panel, family_of
from genmarket.market.scenario import Scenario, load_scenario

__all__ = ["ENV", "LiveMarket", "PanelPlot", "ViewError", "about", "check_scenario", "fixed_entry",
           "initial", "mechanism_kinds", "model_params", "panel_plots", "serve",
           "settings_from_env"]

ENV = "GENMARKET_VIEW"  # {"scenario": absolute path, "device": "cpu" | "cuda" | null}
APP = "genmarket.market.view_app"
INSTALL = "pip install 'genmarket[view]' (or pip install solara)"


class ViewError(ValueError):
    """Something the user can fix before the page starts; its message is one line to print."""


class LiveMarket(Market):
    """The market of a scenario as the page builds it, again on each Reset.

    scenario — a validated `Scenario` (the scenario file's); variant — the name of one of its
    variants, or None for the scenario itself; device — "cpu", "cuda" or None (the scenario's);
    keyword arguments — overrides merged into the scenario (`seed=3`, `mechanism__kind=...`,
    `metrics__every=1`). Mesa's model creator needs a var-keyword argument named `kwargs`.
    """

    def __init__(self, scenario: Scenario, variant: str | None = None, device: str | None = None,
                 **kwargs: Any):
        if variant:
            scenario = dict(scenario.variant_scenarios())[variant]
        super().__init__(scenario, device=device, **kwargs)
        self.variant = variant or None


def _slider() -> type:
    """Mesa's Slider (importing mesa.visualization imports solara, whose check of Mesa's hooks
    warns about Mesa's code, not the user's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"solara(\.|$)")
        from mesa.visualization import Slider
    return Slider


def _variants(scenario: Scenario) -> list[tuple[str | None, Scenario]]:
    """(name, scenario) of each variant, or [(None, scenario)] without variants."""
    return scenario.variant_scenarios() or [(None, scenario)]


def mechanism_kinds(scenario: Scenario, family: Family) -> list[str]:
    """The family's mechanism kinds whose market the scenario (every variant of it) builds, the
    scenario's own first. (A kind may validate and still refuse a setting when its mechanism
    is made, as one-slot auctions refuse several click-through rates: a market is built.)"""
    own = scenario.mechanism.kind
    ok = [own]
    for kind in family.kinds:
        if kind == own:
            continue
        try:
            for _, sub in _variants(scenario):
                Market(sub, mechanism__kind=kind, replicas=1, auctions_per_step=1)
        except (ValueError, RuntimeError):  # ScenarioError is a ValueError
            continue
        ok.append(kind)
    return ok


def model_params(scenario: Scenario, device: str | None) -> dict[str, Any]:
    """SolaraViz's `model_params`: the fixed scenario and device, and the inputs the page shows
    (a variant and a mechanism kind only where there is a choice; no mechanism kind where the
    variants set their own). Each input starts at the scenario's (first variant's) value;
    metrics are collected every round by default, so lines draw from round 1."""
    Slider = _slider()
    subs = _variants(scenario)
    sub = subs[0][1]
    params: dict[str, Any] = {"scenario": scenario, "device": device}
    if scenario.variants:
        names = [v.name for v in scenario.variants]
        params["variant"] = {"type": "Select", "value": names[0], "values": names,
                             "label": "variant"}
    same_kind = len({s.mechanism.kind for _, s in subs}) == 1
    kinds = mechanism_kinds(scenario, family_of(sub.mechanism.kind)) if same_kind else []
    if len(kinds) > 1:
        params["mechanism__kind"] = {"type": "Select", "value": kinds[0], "values": kinds,
                                     "label": "mechanism"}
    params["seed"] = Slider("seed", value=sub.seed, min=0, max=max(99, sub.seed), step=1)
    B = sub.auctions_per_step
    params["auctions_per_step"] = Slider("auctions per round", value=B, min=1,
                                         max=max(16, 4 * B), step=1)
    shortest = min(s.steps for _, s in subs)  # metrics.every may not exceed steps
    params["metrics__every"] = Slider("collect metrics every k rounds", value=1, min=1,
                                      max=max(1, min(50, shortest)), step=1)
    return params


def initial(params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the page's first `LiveMarket`: the fixed parameters as they are,
    each input's starting value (as Mesa's model creator does on Reset)."""
    Slider = _slider()

    def start(v):
        if isinstance(v, Slider):
            return v.value
        return v["value"] if isinstance(v, dict) and "type" in v else v

    return {k: start(v) for k, v in params.items()}


@dataclass(frozen=True)
class PanelPlot:
    """One plot of the page: a panel of the family's metric specifications."""

    panel: Panel
    family: Family

    @property
    def ylabel(self) -> str:
        return self.family.money if self.panel.ylabel == "money" else self.panel.ylabel

    @property
    def is_entry(self) -> bool:
        """Whether it is the engine's entry panel (constant when entry is fixed)."""
        return self.panel.name in {s.panel for s in ENGINE_METRICS}

    def columns(self, model: Market) -> tuple[dict[str, str], dict[str, float]]:
        """(column -> legend label, reference label -> value) for the model's scenario."""
        from genmarket.market.reports.run_figures import panel_columns

        groups = [g.name for g in model.groups]
        return panel_columns(self.family, self.panel, groups, model.scenario)

    def series(self, model: Market) -> dict[str, tuple[list[int], list[float]]]:
        """legend label -> (rounds, values): the model's collected rows of each column (the
        mean over replicas; row s of the DataCollector is round s), the rows of rounds not
        collected (NaN) dropped so that lines draw. Reads the rows every column has already:
        while playing, the next round may be collecting as the page draws."""
        rows = model.datacollector.model_vars
        cols, _ = self.columns(model)
        have = min((len(rows[c]) for c in cols if c in rows), default=0)
        out = {}
        for col, name in cols.items():
            if col not in rows:
                continue
            y = np.asarray(rows[col][:have], dtype=float)
            x = np.flatnonzero(~np.isnan(y))
            if len(x):
                out[name] = (x.tolist(), y[x].tolist())
        return out

    def figure(self, model: Market):
        """A matplotlib Figure of the panel: a line per column, reference lines dashed."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(6.0, 3.3), layout="constrained")
        ax = fig.subplots()
        for k, (name, (x, y)) in enumerate(self.series(model).items()):
            ax.plot(x, y, color=f"C{k % 10}", label=name,
                    marker="o" if len(x) == 1 else None, ms=3)
        _, refs = self.columns(model)
        for k, (name, value) in enumerate(refs.items()):
            if math.isfinite(value):
                ax.axhline(value, color="0.35", ls=("--", ":", "-.")[k % 3], lw=1, label=name)
        ax.set_title(self.panel.title)
        ax.set_xlabel("round")
        ax.set_ylabel(self.ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        return fig


def fixed_entry(scenario: Scenario) -> bool:
    """Whether every advertiser of every variant always or never enters (entry cannot move)."""
    return all(a.entry.kind in ("always", "never")
               for _, sub in _variants(scenario) for a in sub.advertisers)


def panel_plots(scenario: Scenario) -> list[PanelPlot]:
    """One plot per panel of the scenario's family, in the family's order; not the engine's
    entry panel where entry is fixed (its lines could not move)."""
    family = family_of(scenario.mechanism.kind)
    fixed = fixed_entry(scenario)
    return [PanelPlot(panel, family) for panel in family.panels
            if not (fixed and PanelPlot(panel, family).is_entry)]


def about(model: LiveMarket) -> str:
    """One Markdown line saying which market the page shows and what its lines are."""
    sc = model.scenario
    variant = f" (variant **{model.variant}**)" if model.variant else ""
    every = "every round" if model.every == 1 else f"every {model.every} rounds"
    return (f"**{sc.name}**{variant}: **{sc.mechanism.kind}**, {model.n} advertisers, "
            f"{model.B} auctions per round, seed {sc.seed}, {sc.steps} rounds. Lines: the mean "
            f"over {model.R} replica(s), collected {every}.")


def check_scenario(path: Path, device: str | None) -> Scenario:
    """The validated scenario of `path`, once its market (each variant's) is built and has
    cleared a round. Raises ScenarioError (a bad file) or ViewError (anything else)."""
    scenario = load_scenario(path, {"device": device})  # checked on the device the page uses
    if scenario.experiment is not None:
        raise ViewError(f"{path}: an [experiment] ({scenario.experiment.kind}), not a repeated "
                        f"market; genmarket view shows markets round by round: run this one "
                        f"with genmarket run {path}")
    for name, _ in _variants(scenario):
        try:
            LiveMarket(scenario, variant=name, device=device, metrics__every=1).step()
        except (RuntimeError, ValueError) as exc:
            where = f" (variant {name})" if name else ""
            raise ViewError(f"{path}{where}: its market cannot run: {exc}") from None
    return scenario


def _socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); ViewError when it is taken or cannot be had."""
    if not 0 <= port <= 65535:
        raise ViewError(f"--port {port}: must be between 0 and 65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ViewError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ViewError(f"port {port} on {host} is in use (another genmarket view or "
                            f"server?); give another with --port N, or --port 0") from None
        raise ViewError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def settings_from_env() -> tuple[Scenario, str | None]:
    """The scenario and device `serve` handed to the page (through `GENMARKET_VIEW`)."""
    raw = os.environ.get(ENV)
    if not raw:
        raise ViewError(f"{ENV} is not set: start the page with genmarket view SCENARIO")
    settings = json.loads(raw)
    device = settings.get("device")
    return load_scenario(settings["scenario"], {"device": device}), device


def serve(path: Path, host: str = "127.0.0.1", port: int = 8765, device: str | None = None,
          announce=lambda line: print(line, flush=True)) -> int:
    """Serve the live page of the scenario at `path` until Ctrl-C; returns 0 (130 when
    interrupted before the server started).

    Raises ViewError (solara missing, not a market, its market fails, the port taken) or
    ScenarioError (a bad scenario) before anything starts. `announce(line)` is told the address
    once the socket is bound (port 0 takes a free one)."""
    try:
        return _serve(Path(path), host, port, device, announce)
    except KeyboardInterrupt:
        print("genmarket view: interrupted before the page was served", file=sys.stderr)
        return 130


def _serve(path: Path, host: str, port: int, device: str | None, announce) -> int:
    # solara's own warnings (Mesa's hooks checked on import, cookies over http) are not the user's
    warnings.filterwarnings("ignore", category=UserWarning, module=r"solara(\.|$)")
    try:
        import solara  # noqa: F401
        import uvicorn
        from mesa.visualization import SolaraViz  # noqa: F401
    except ImportError as exc:
        raise ViewError(f"genmarket view needs solara ({exc.name} is missing): {INSTALL}") from None
    from genmarket.market.running.api import configure

    configure(1)
    check_scenario(path, device)
    sock = _socket(host, port)
    bound = sock.getsockname()[1]
    # read by solara when its server module is imported: the app, and no usage reports sent
    os.environ[ENV] = json.dumps({"scenario": str(Path(path).resolve()), "device": device})
    os.environ["SOLARA_APP"] = APP
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "false")
    os.environ["SERVER_NAME"], os.environ["SERVER_PORT"] = host, str(bound)
    url_host = f"[{host}]" if ":" in host else host
    announce(f"genmarket view: http://{url_host}:{bound}/  (Ctrl-C stops it)")
    config = uvicorn.Config("solara.server.starlette:app", log_level="warning", lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])  # until Ctrl-C, which uvicorn handles
    finally:
        sock.close()
    return 0
