"""Reports say whether the learners converged, next to the findings, with the numbers; show the
bid function per value bucket with its theory line; and say what the per-run misreport gain
holds fixed when advertisers delegate."""

import json

import pytest

from genmarket.market.reports.report import write_report
from genmarket.market.running.runner import run_scenario
from genmarket.market.scenario import validate_scenario


def _run(data, path):
    return run_scenario(validate_scenario(data), path, figures=False)


@pytest.fixture
def first_price(scenario_dict):
    d = scenario_dict
    d.update(steps=60, auctions_per_step=32)
    d["mechanism"] = {"kind": "first_price"}
    d["advertisers"][0]["value"] = {"dist": "uniform", "low": 0.0, "high": 1.0}
    return d


def test_an_unconverged_run_says_so_next_to_every_finding(first_price, tmp_path):
    first_price["advertisers"][0]["strategy"] = {
        "kind": "hedge", "eta": 1e-4, "buckets": 3, "multipliers": {"low": 0.0, "high": 1.5, "n": 16}}
    res = _run(first_price, tmp_path / "young")
    conv = res.summary["convergence"]
    assert conv["converged"] is False
    _, md = write_report(res.folder)
    text = md.read_text()
    findings = text[text.index("## Findings"):text.index("## Over time")]
    entry = conv["policies"]["bidders.bidder"]
    assert "Not converged over rounds 55-60" in findings
    assert f"{entry['tv']:.3f}" in findings and f"{100 * entry['regret_share']:.1f}%" in findings
    bullets = [b for b in findings.split("\n- ")[1:]]
    marked = [b for b in bullets if "[learners not converged" in b]
    assert len(marked) == len(bullets) - 1  # every finding but the verdict itself


def test_a_converged_run_shows_its_bid_function_against_bayes_nash(first_price, tmp_path):
    first_price.update(steps=400, replicas=2)
    first_price["advertisers"][0]["strategy"] = {
        "kind": "hedge", "eta": 0.5, "buckets": 4, "multipliers": {"low": 0.0, "high": 1.5, "n": 31}}
    res = _run(first_price, tmp_path / "fp")
    assert res.summary["convergence"]["converged"] is True
    text = write_report(res.folder)[1].read_text()
    assert "The learners converged over rounds 361-400" in text
    assert "[learners not converged" not in text
    section = text[text.index("## Bid function per value bucket"):]
    assert "Bayes-Nash bid (n-1)/n (n=3)" in section and "0.667" in section
    for b in res.summary["bid_function"]["bidders.bidder"]["buckets"]:
        assert f"{b['action']:.3f}" in section
    assert (res.folder / "report_figures").exists()
    assert any("bid-function" in p.name for p in (res.folder / "report_figures").iterdir())


def test_delegating_runs_say_what_the_misreport_gain_holds_fixed(first_price, tmp_path):
    first_price["advertisers"][0]["report"] = {"kind": "truthful"}
    res = _run(first_price, tmp_path / "del")
    text = write_report(res.folder)[1].read_text()
    assert "holds every policy fixed" in text and "genmarket compare" in text
    summary = json.loads((res.folder / "summary.json").read_text())
    assert "bidders.bidder" in summary["convergence"]["policies"]


def test_a_one_replica_run_reports_without_intervals(first_price, tmp_path):
    """One replica: no interval anywhere (no '± 0.000'), and the bid-function figure draws."""
    first_price.update(replicas=1)
    res = _run(first_price, tmp_path / "one")
    text = write_report(res.folder)[1].read_text()
    findings = text[text.index("## Findings"):text.index("## Over time")]
    assert "± 0.000" not in findings and "(1 replica: no interval)" in findings
    assert "## Bid function per value bucket" in text


def test_each_variant_folder_names_its_variant_in_its_figures(scenario_dict, tmp_path, monkeypatch):
    """The figures a variant's own run folder gets carry the variant's name in their titles."""
    from genmarket.market.reports import run_figures

    titles = {}
    real = run_figures.write_figures

    def spy(metrics, folder, scenario, variant=None):
        paths = real(metrics, folder, scenario, variant)
        figs = run_figures.panel_figures(metrics, run_figures.family_of(scenario.mechanism.kind),
                                         [g.group for g in scenario.advertisers], scenario, variant)
        titles[variant] = [f.texts[0].get_text() if f.texts else f.axes[0].get_title()
                           for _, f in figs]
        return paths

    monkeypatch.setattr(run_figures, "write_figures", spy)
    d = scenario_dict
    d["variants"] = [{"name": "sp"}, {"name": "fp", "mechanism": {"kind": "first_price"}}]
    run_scenario(validate_scenario(d), tmp_path / "v")
    assert set(titles) == {"sp", "fp"}
    for name, ts in titles.items():
        assert ts and all(name in t for t in ts), ts
