"""The document a report is written into: sections, sentences, tables and figures, rendered
as one self-contained HTML page (figures embedded as base64 PNG, nothing loaded from elsewhere)
and as Markdown (figures linked in report_figures/)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from genmarket.market.reports import figures as F

__all__ = ["CSS", "FIGURES", "Doc", "md_escape", "read_json"]

FIGURES = "report_figures"
CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:1000px;margin:0 auto;padding:1.5em 2em;background:#fff}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#555}li{margin:.25em 0}.meta{color:#666}
"""


class Doc:
    """Headings, paragraphs, sentence lists, tables and figures, rendered to HTML and Markdown."""

    def __init__(self, title: str):
        self.title, self.blocks, self.pngs = title, [], []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def findings(self, sentences: list[str]) -> None:
        if sentences:
            self.blocks.append(("ul", sentences))

    def table(self, df: pd.DataFrame | None) -> None:
        if df is not None and len(df):
            self.blocks.append(("table", df.astype(str)))

    def figure(self, fig, name: str, caption: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        F.plt.close(fig)
        file = f"{len(self.pngs) + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
        self.pngs.append((file, buf.getvalue()))
        self.blocks.append(("fig", file, caption))

    def html(self, source: str) -> str:
        data = dict(self.pngs)
        e = html.escape
        out = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
               f"<title>{e(self.title)}</title><style>{CSS}</style></head><body><main>",
               f"<h1>{e(self.title)}</h1>", f'<p class="meta">genmarket report of {e(source)}</p>']
        for kind, *rest in self.blocks:
            if kind == "h":
                out.append(f"<h{rest[0]}>{e(rest[1])}</h{rest[0]}>")
            elif kind == "p":
                out.append(f"<p>{e(rest[0])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{e(s)}</li>" for s in rest[0]) + "</ul>")
            elif kind == "table":
                df = rest[0]
                head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
                body = "".join(
                    "<tr>" + "".join(f'<td{_num_class(v)}>{e(v)}</td>' for v in row) + "</tr>"
                    for row in df.itertuples(index=False))
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                b64 = base64.b64encode(data[rest[0]]).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{e(rest[1])}">'
                           f"<figcaption>{e(rest[1])}</figcaption></figure>")
        return "\n".join(out) + "\n</main></body></html>\n"

    def markdown(self, source: str) -> str:
        """The document as Markdown. Every text is escaped (`md_escape`), as the HTML page
        escapes it: names, descriptions, queries and titles come from the scenario."""
        e = md_escape
        out = [f"# {e(self.title)}", "", f"genmarket report of {e(source)}", ""]
        for kind, *rest in self.blocks:
            if kind == "h":
                out += ["#" * rest[0] + " " + e(rest[1]), ""]
            elif kind == "p":
                out += [e(rest[0]), ""]
            elif kind == "ul":
                out += [f"- {e(s)}" for s in rest[0]] + [""]
            elif kind == "table":
                df = rest[0]
                cell = [[str(c) for c in df.columns]] + df.to_numpy().tolist()
                rows = ["| " + " | ".join(e(str(v), False) for v in r) + " |" for r in cell]
                out += [rows[0], "|" + "---|" * len(df.columns), *rows[1:], ""]
            else:
                out += [f"![{e(rest[1])}]({FIGURES}/{rest[0]})", "", f"*{e(rest[1])}*", ""]
        return "\n".join(out)


# Markdown's inline syntax (emphasis, code, links, tables, escapes) and raw HTML's brackets
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# what makes a block of a line's start: headings, quotes, lists, rules, setext underlines
_MD_BLOCK = re.compile(r"^(\d*)([#>+=-]|(?<=\d)[.)])")


def md_escape(text: str, block: bool = True) -> str:
    """`text` as Markdown that shows it literally, on one line: line breaks become spaces,
    `&`, `<` and `>` become entities (no raw HTML), Markdown's inline punctuation is
    backslash-escaped (no emphasis, code, link or table cell boundary) and, where the text
    starts a block (`block`; not in a table cell), so is a marker at its start (no heading,
    quote, list or rule; leading spaces, which would make a code block, are dropped)."""
    one = " ".join(str(text).splitlines())
    one = one.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    one = _MD_INLINE.sub(r"\\\1", one)
    if not block:
        return one
    return _MD_BLOCK.sub(lambda m: m.group(1) + "\\" + m.group(2), one.lstrip(), count=1)


def _num_class(v: str) -> str:
    return ' class="num"' if re.fullmatch(r"[-+−]?[\d.,]+( ± [\d.,]+)?%?", v) else ""


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in file `path`. Raises ValueError, one line naming the file, when it is
    missing, not JSON (damaged, cut short) or not an object."""
    what = "re-run the command that wrote the folder"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing: {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}): the file is damaged; {what}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object (a {type(data).__name__}): {what}")
    return data
