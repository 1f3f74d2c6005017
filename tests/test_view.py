"""`genmarket view`: the live page's market is the engine's, its plots draw every family's panels
from the specifications, its inputs only offer what validates, user mistakes are one line
without a traceback, and in headless Chromium the page loads and a Step advances its plots.

Set GENMARKET_VIEW_SCREENSHOT=docs/view.png to refresh the README's screenshot from the browser
test."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from genmarket.market.cli import main
from genmarket.market.engine.market import Market
from genmarket.market.engine.seam import family_of
from genmarket.market.scenario import load_scenario, validate_scenario
from genmarket.market.view import (
    LiveMarket,
    PanelPlot,
    fixed_entry,
    initial,
    mechanism_kinds,
    model_params,
    panel_plots,
)

ROOT = Path(__file__).resolve().parent.parent
CLASSIC = ROOT / "scenarios" / "first_price_learning.toml"
MOSAIC = ROOT / "scenarios" / "quickstart.toml"
HAS_SOLARA = all(importlib.util.find_spec(m) is not None for m in ("solara", "altair"))
needs_solara = pytest.mark.skipif(not HAS_SOLARA, reason="solara or altair is not installed "
                                  "(the view extra: pip install -e '.[view]')")


def _small(path: Path, **overrides) -> LiveMarket:
    return LiveMarket(load_scenario(path), replicas=2, auctions_per_step=8, **overrides)


@pytest.mark.parametrize("path", [CLASSIC, MOSAIC], ids=lambda p: p.stem)
def test_every_panel_draws_each_collected_round_of_its_columns(path):
    model = _small(path, metrics__every=1)
    for _ in range(3):
        model.step()
    plots = panel_plots(model.scenario)
    family = family_of(model.scenario.mechanism.kind)
    fixed = fixed_entry(model.scenario)
    assert [p.panel for p in plots] == [p.panel for p in map(lambda x: PanelPlot(x, family),
                                                             family.panels)
                                        if not (fixed and p.is_entry)]
    df = model.datacollector.get_model_vars_dataframe()
    for plot in plots:
        cols, _ = plot.columns(model)
        series = plot.series(model)
        assert series, plot.panel.name
        for col, name in cols.items():
            if name in series:  # a column without a number (no such group) draws nothing
                x, y = series[name]
                assert x == [1, 2, 3]
                np.testing.assert_array_equal(y, df[col].iloc[1:].to_numpy())
        fig = plot.figure(model)
        assert fig.axes[0].get_title() == plot.panel.title


def test_rounds_not_collected_are_left_out_so_lines_draw():
    model = _small(CLASSIC, metrics__every=2)
    for _ in range(5):
        model.step()
    df = model.datacollector.get_model_vars_dataframe()
    assert df["revenue"].isna().sum() == 3  # rounds 0 (none yet), 3, 5; round 1 is collected
    for plot in panel_plots(model.scenario):
        for x, y in plot.series(model).values():
            assert x == [1, 2, 4] and np.isfinite(y).all()


def test_the_page_market_is_the_engines_market():
    scenario = load_scenario(CLASSIC, {"replicas": 2, "auctions_per_step": 8})
    live = LiveMarket(scenario, metrics__every=1)
    engine = Market(scenario, metrics__every=1)
    for _ in range(4):
        live.step()
        engine.step()
        assert live.collected_means == engine.collected_means


@needs_solara
def test_inputs_start_at_the_scenario_and_offer_only_kinds_that_validate():
    scenario = load_scenario(CLASSIC)
    params = model_params(scenario, "cpu")
    start = initial(params)
    assert start["seed"] == scenario.seed
    assert start["auctions_per_step"] == scenario.auctions_per_step
    assert start["mechanism__kind"] == scenario.mechanism.kind
    assert start["device"] == "cpu" and start["scenario"] is scenario
    # one slot, no reserve: every classic auction takes it
    assert sorted(params["mechanism__kind"]["values"]) == sorted(family_of("gsp").kinds)
    # three slots: the scenario's own kind first, then the others that can sell three slots in
    # the family's order; not second price (one slot), nor a kind that does not validate
    data = load_scenario(CLASSIC).model_dump(mode="python", exclude_unset=True)
    data["mechanism"] = {"kind": "vcg", "ctrs": [1.0, 0.6, 0.3]}
    slots = validate_scenario(data)
    family = family_of("vcg")
    bogus = dataclasses.replace(family, kinds=(*family.kinds, "no_such_auction"))
    assert mechanism_kinds(slots, bogus) == ["vcg", "first_price", "gsp"]
    with pytest.raises(ValueError, match="one slot"):
        LiveMarket(slots, mechanism__kind="second_price")
    LiveMarket(slots, mechanism__kind="gsp", replicas=1, auctions_per_step=4).step()
    # a one-kind family offers no choice
    assert "mechanism__kind" not in model_params(load_scenario(MOSAIC), None)
    # each input's start builds the market
    LiveMarket(**initial(model_params(load_scenario(MOSAIC), None)))


@needs_solara
def test_variants_are_an_input_and_each_builds_its_own_market():
    scenario = load_scenario(ROOT / "scenarios" / "qlearning_collusion.toml")
    params = model_params(scenario, None)
    names = [v.name for v in scenario.variants]
    assert params["variant"]["values"] == names
    # its variants set their own mechanism kinds: the page does not override them
    assert "mechanism__kind" not in params
    start = initial(params)
    for name, sub in scenario.variant_scenarios():
        model = LiveMarket(**{**start, "variant": name, "replicas": 2})
        assert model.scenario == validate_scenario(
            {**sub.model_dump(mode="python", exclude_unset=True), "replicas": 2,
             "metrics": {**sub.metrics.model_dump(), "every": 1}})
        assert model.variant == name and model.scenario.mechanism.kind == sub.mechanism.kind


def test_user_mistakes_are_one_line_without_traceback(capsys, monkeypatch):
    cases = []
    if HAS_SOLARA:  # without solara, that is what is said first
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = [
            (["view", str(ROOT / "scenarios" / "mosaic_paper.toml")], "not a repeated market"),
            (["view", "no/such.toml"], "file not found"),
            (["view", str(CLASSIC), "--port", "70000"], "--port 70000"),
            (["view", str(CLASSIC), "--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
            # 192.0.2.1 is TEST-NET-1 (RFC 5737): never a machine's own address
            (["view", str(CLASSIC), "--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),
        ]
    for argv, words in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    if HAS_SOLARA:
        busy.close()
    monkeypatch.setitem(sys.modules, "solara", None)  # as if it were not installed
    assert main(["view", str(CLASSIC)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'genmarket[view]'" in err and "Traceback" not in err


# ------------------------------------------------------------------ the page in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if CHROMIUM is None:
        return "no chromium on PATH (Debian: apt install chromium)"
    if not HAS_SOLARA:
        return "solara is not installed (pip install -e '.[view]')"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright; the system chromium is used)"
    return None


def _start(path: Path) -> tuple[subprocess.Popen, str, queue.Queue]:
    """`genmarket view path --port 0` in a subprocess; returns it, its address and its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genmarket.market.cli", "view", str(path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"genmarket view printed no address within 60 s: {''.join(seen)}")
        seen.append(line)
        found = re.search(r"http://\S+", line)
        if found:
            return proc, found.group(0), lines


# the bytes of each plot (FigureMatplotlib draws a PNG into a blob: image), as length:hash
PICTURES = """async () => Promise.all(Array.from(document.querySelectorAll("img[src^='blob:']"))
    .map(async (img) => {
        const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
        let h = 0;
        for (const b of bytes) h = (h * 31 + b) >>> 0;
        return bytes.length + ":" + h;
    }))"""


ROUNDS_AT_LEAST = "(k) => +((document.body.innerText.match(/Step: (\\d+)/) || [0, -1])[1]) >= k"


def _pictures(page, n: int, until=lambda shown: True, wait_s: float = 30) -> list[str]:
    """The n plots' pictures, once there are n of them and `until(pictures)` holds."""
    deadline = time.monotonic() + wait_s
    while True:
        shown = page.evaluate(PICTURES)
        if len(shown) == n and until(shown):
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"{n} plots wanted; shown: {shown}")
        page.wait_for_timeout(250)


@pytest.mark.slow
@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_the_page_loads_and_a_step_advances_the_plots():
    from playwright.sync_api import sync_playwright

    proc, url, _ = _start(CLASSIC)
    n = len(panel_plots(load_scenario(CLASSIC)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_text("Step: 0").wait_for(timeout=60_000)
            assert page.get_by_text("first-price-learning").count() >= 1
            before = _pictures(page, n)  # round 0: axes and reference lines, no data yet
            step = page.get_by_role("button", name="Step")
            step.click()
            page.get_by_text("Step: 1").wait_for(timeout=30_000)
            # every plot redrawn with round 1's data
            after = _pictures(page, n, lambda shown: all(a != b for a, b in zip(shown, before, strict=True)))
            # play runs rounds on its own until paused
            page.get_by_role("button", name="▶").click()
            page.wait_for_function(ROUNDS_AT_LEAST, arg=12, timeout=60_000)
            page.get_by_role("button", name="❚❚").click()
            _pictures(page, n, lambda shown: all(a != b for a, b in zip(shown, after, strict=True)))
            shot = os.environ.get("GENMARKET_VIEW_SCREENSHOT")
            if shot:
                page.wait_for_timeout(1000)
                page.screenshot(path=shot)
            # Reset builds the market afresh (same inputs, same seed): round 0's plots again
            page.get_by_role("button", name="Reset").click()
            page.get_by_text("Step: 0").wait_for(timeout=30_000)
            _pictures(page, n, lambda shown: shown == before)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
