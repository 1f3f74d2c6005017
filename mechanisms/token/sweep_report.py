"""What `genmarket report` and the terminal show of a bid-sweep folder: sentences generated
from its summary.json, mention rates and payments against the relative bid (figures and
tables), and sample replies per bid (their text escaped by the report's renderer, newlines
flattened so that a reply stays one table cell)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from rich.table import Table

from genmarket.market.reports import figures as F
from genmarket.market.reports.document import Doc, read_json
from genmarket.market.reports.specs import family_for
from genmarket.market.reports.text import fmt, setup_table
from genmarket.market.running.folder import SAMPLES, read_samples

__all__ = ["mention_figure", "payment_figure", "sample_table", "sweep_report", "sweep_sentences",
           "sweep_table", "write_sweep_figures"]

RULES = {"linear": "linear", "loglinear": "log-linear"}
PAYMENT_WORDS = {"pay_as_bid": "pay-as-bid", "vcg": "VCG", "second_price": "second price"}


def _cells(summary: dict) -> pd.DataFrame:
    return pd.DataFrame(summary["cells"])


def _at(cells: pd.DataFrame, rule: str, advertiser: str, s: float) -> dict | None:
    """The summary cell of `rule`, `advertiser` at the grid bid nearest to s."""
    c = cells[(cells["rule"] == rule) & (cells["advertiser"] == advertiser)]
    if c.empty:
        return None
    return c.iloc[int((c["bid_share"] - s).abs().to_numpy().argmin())].to_dict()


def _own(name: str) -> str:
    """The possessive: "Alpha Airlines'", "Beta Resort's"."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _pct(x: float) -> str:
    """A share as a percentage: whole percents, one decimal below 1% (so 1 in 200 is not 0%)."""
    return f"{100 * x:.1f}%" if 0 < x < 0.01 else f"{100 * x:.0f}%"


def _rate(cell: dict, key: str = "mention") -> str:
    """'30% [25, 37]': the share of `key` + '_rate' with its interval (in percent)."""
    rate = cell[f"{key}_rate"] if f"{key}_rate" in cell else cell[f"{key}_mentioned"]
    return f"{_pct(rate)} [{100 * cell[key + '_low']:.0f}, {100 * cell[key + '_high']:.0f}]"


def sweep_sentences(summary: dict) -> list[str]:
    """Findings from a bid-sweep summary: the swept advertiser's mention rate at the ends and
    middle of the grid per rule, whether it rises with the bid, the others' rates, payments."""
    cells = _cells(summary)
    if cells.empty:
        return []
    swept, others = summary["swept"], [a for a in summary["advertisers"] if a != summary["swept"]]
    lo, hi = float(cells["bid_share"].min()), float(cells["bid_share"].max())
    out = []
    for rule in summary["rules"]:
        at = [c for s in dict.fromkeys((lo, (lo + hi) / 2, hi))
              if (c := _at(cells, rule, swept, s)) is not None]
        words = ", ".join(f"{_rate(c)} at relative bid {c['bid_share']:g}" for c in at)
        other = "; ".join(f"{o}: " + ", ".join(f"{_rate(c)} at {c['bid_share']:g}" for s in (lo, hi)
                                                if (c := _at(cells, rule, o, s)) is not None)
                          for o in others)
        out.append(f"Under {RULES[rule]} aggregation, the share of replies that mention {swept} "
                   f"is {words} ({other}; 95% Wilson intervals over {int(at[0]['replies'])} "
                   "replies per bid).")
    for rule in summary["rules"]:
        c = cells[(cells["rule"] == rule) & (cells["advertiser"] == swept)].sort_values(
            "bid_share")
        drops = [(a, b) for a, b in zip(c.to_dict("records"), c.to_dict("records")[1:],
                                        strict=False) if b["mention_high"] < a["mention_low"]]
        out.append(f"Under {RULES[rule]} aggregation, {_own(swept)} mention rate "
                   + ("never falls significantly as its bid rises (no step of the grid where the "
                      "intervals separate downwards)." if not drops else
                      "falls significantly between relative bids "
                      + ", ".join(f"{a['bid_share']:g} and {b['bid_share']:g}" for a, b in drops)
                      + "."))
    whole = pd.DataFrame(summary.get("reply_cells", []))
    for rule in summary["rules"] if not whole.empty else []:
        w = whole[whole["rule"] == rule]
        top = w.iloc[int(w["all_mentioned"].to_numpy().argmax())]
        if not top["all_mentioned"]:
            out.append(f"Under {RULES[rule]} aggregation, no reply mentions every advertiser, "
                       "at any bid of the grid.")
            continue
        out.append(f"Under {RULES[rule]} aggregation, replies mention every advertiser most "
                   f"often at relative bid {top['bid_share']:g}: {_rate(top, 'all')}; at that "
                   f"bid {_pct(top['none_mentioned'])} mention none.")
    mid = (lo + hi) / 2
    for rule in summary["rules"]:
        c = _at(cells, rule, swept, mid)
        if c is None:
            continue
        pays = ", ".join(f"{PAYMENT_WORDS.get(p, p)} {fmt(c.get('payment_' + p))}"
                         for p in summary["payments"] if c.get("payment_" + p) is not None)
        out.append(f"Under {RULES[rule]} aggregation at relative bid {c['bid_share']:g}, {swept} "
                   f"pays per reply (money; bids in money per nat, total {summary['total_bid']:g}): "
                   f"{pays}; replies are {fmt(c['length'], 3)} tokens long.")
    return out


def _long(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.assign(rule=cells["rule"].map(lambda r: RULES.get(r, r)))


def mention_figure(summary: dict) -> Figure:
    """Mention rate against the swept advertiser's relative bid: one line per advertiser
    (colour) and rule (line style), 95% Wilson intervals as error bars."""
    cells = _long(_cells(summary))
    fig, ax = F.plt.subplots(figsize=(6.5, 3.8), dpi=100)
    colours = F.palette(summary["advertisers"])
    styles = dict(zip(RULES.values(), ("-", "--"), strict=True))
    for (rule, adv), c in cells.groupby(["rule", "advertiser"], sort=False):
        c = c.sort_values("bid_share")
        ax.errorbar(c["bid_share"], c["mention_rate"],
                    yerr=[c["mention_rate"] - c["mention_low"], c["mention_high"] - c["mention_rate"]],
                    color=colours.get(adv), ls=styles.get(rule, ":"), marker="o", ms=3,
                    capsize=2, label=f"{adv}, {rule}")
    ax.set(xlabel=f"{_own(summary['swept'])} relative bid (share of the total bid)",
           ylabel="share of replies mentioning", title="Mentions against the relative bid",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return F.done(fig)


def payment_figure(summary: dict) -> Figure:
    """The swept advertiser's payment per reply against its relative bid: one line per payment
    rule (colour) and aggregation rule (line style), 95% t-intervals as error bars."""
    cells = _long(_cells(summary))
    cells = cells[cells["advertiser"] == summary["swept"]]
    fig, ax = F.plt.subplots(figsize=(6.5, 3.8), dpi=100)
    colours = F.palette([PAYMENT_WORDS.get(p, p) for p in summary["payments"]])
    styles = dict(zip(RULES.values(), ("-", "--"), strict=True))
    for rule, c in cells.groupby("rule", sort=False):
        c = c.sort_values("bid_share")
        for p in summary["payments"]:
            words = PAYMENT_WORDS.get(p, p)
            ax.errorbar(c["bid_share"], c["payment_" + p], yerr=c["payment_" + p + "_ci95"].fillna(0),
                        color=colours.get(words), ls=styles.get(rule, ":"), marker="o", ms=3,
                        capsize=2, label=f"{words}, {rule}")
    ax.set(xlabel=f"{_own(summary['swept'])} relative bid (share of the total bid)",
           ylabel="money per reply", title=f"{_own(summary['swept'])} payment per reply")
    ax.legend(fontsize=8)
    return F.done(fig)


def write_sweep_figures(summary: dict, folder: Path) -> list[Path]:
    """mentions.png and payments.png in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (("mentions", mention_figure(summary)), ("payments", payment_figure(summary))):
        paths.append(folder / f"{name}.png")
        fig.savefig(paths[-1])
        F.plt.close(fig)
    return paths


def rates_table(summary: dict) -> pd.DataFrame:
    """One row per rule and bid: each advertiser's mention rate [95% Wilson interval], the
    reply length and the swept advertiser's value and payments."""
    cells = _cells(summary)
    rows = []
    for (rule, s), c in cells.groupby(["rule", "bid_share"], sort=False):
        row = {"rule": RULES.get(rule, rule), "relative bid": f"{s:g}"}
        for r in c.to_dict("records"):
            row[f"{r['advertiser']} mentioned"] = _rate(r)
        w = [r for r in summary.get("reply_cells", []) if r["rule"] == rule and r["bid_share"] == s]
        for name in ("all", "none") if w else ():
            row[f"{name} mentioned"] = _rate(w[0], name)
        me = c[c["swept"]].iloc[0].to_dict()
        row["length (tokens)"] = fmt(me["length"], 3)
        row[f"{summary['swept']} -ΣD (nats)"] = fmt(me["value"], 3)
        for p in summary["payments"]:
            row[f"pays, {PAYMENT_WORDS.get(p, p)}"] = fmt(me["payment_" + p], 3)
        rows.append(row)
    return pd.DataFrame(rows)


def sample_table(records: list[dict], rule: str) -> pd.DataFrame:
    """Sample replies of `rule`, one row per bid, query and reply kept: the text (newlines
    flattened; the renderer escapes it) and who it mentions."""
    rows = [{"relative bid": f"{r['bid_share']:g}", "query": r["query"],
             "reply": " ".join(str(r["reply"]).split()),
             "mentions": ", ".join(r.get("mentions", [])) or "none"}
            for r in records if r.get("rule") == rule]
    return pd.DataFrame(rows)


def sweep_report(doc: Doc, folder: Path, level: int) -> None:
    summary = read_json(folder / "summary.json")
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
    doc.heading("What was run", level)
    if manifest:
        with contextlib.suppress(KeyError, ValueError):  # no family answers the kind: no table
            doc.table(setup_table(manifest, family_for(manifest)))
    doc.heading("Findings", level)
    doc.findings(sweep_sentences(summary))
    doc.heading("Against the relative bid", level)
    doc.text(f"{_own(summary['swept'])} bid is the share s of the total bid {summary['total_bid']:g} "
             "(money per nat); the others share 1 - s. Every bid reads the same uniforms (common "
             f"random numbers); reference weight b_0 = {summary['reference_weight']:g}.")
    doc.figure(mention_figure(summary), "mentions", "Share of replies that mention each "
               "advertiser against the relative bid, with 95% Wilson intervals.")
    doc.figure(payment_figure(summary), "payments", f"{_own(summary['swept'])} payment per reply "
               "(money) under each payment rule, with 95% t-intervals.")
    doc.table(rates_table(summary))
    records = read_samples(folder / SAMPLES) if (folder / SAMPLES).exists() else []
    if records:
        doc.heading("Sample replies per bid", level)
        for rule in summary["rules"]:
            doc.heading(f"{RULES.get(rule, rule)} aggregation", level + 1)
            doc.table(sample_table(records, rule))


def sweep_table(summary: dict) -> Table:
    """The terminal's table: per rule and bid, the share of replies mentioning each advertiser,
    all and none, the swept advertiser's -ΣD and its payment under the scenario's rule."""
    swept, pay = summary["swept"], summary.get("payment", summary["payments"][0])
    pay = pay if pay in summary["payments"] else summary["payments"][0]
    table = Table(title=f"bid sweep: share of replies mentioning, against {_own(swept)} relative "
                        f"bid ({summary['replies']} replies per bid and query)")
    names = list(summary["advertisers"])
    for c in ["rule", "bid", *names, "all", "none", f"{swept} -ΣD (nats)",
              f"pays ({PAYMENT_WORDS.get(pay, pay)})"]:
        table.add_column(c, justify="left" if c == "rule" else "right")
    cells = _cells(summary)
    whole = {(w["rule"], w["bid_share"]): w for w in summary.get("reply_cells", [])}
    for (rule, s), c in cells.groupby(["rule", "bid_share"], sort=False):
        by = {r["advertiser"]: r for r in c.to_dict("records")}
        w = whole.get((rule, s), {})
        table.add_row(RULES.get(rule, rule), f"{s:g}",
                      *(_pct(by[a]["mention_rate"]) if a in by else "-" for a in names),
                      *(_pct(w[k]) if k in w else "-"
                        for k in ("all_mentioned", "none_mentioned")),
                      fmt(by[swept]["value"], 3), fmt(by[swept].get("payment_" + pay), 3))
    return table
