"""report.md shows what comes from the scenario literally: a name, description, query or title
with Markdown or HTML in it neither breaks a table nor injects markup (checked by parsing the
Markdown with markdown-it, CommonMark with GFM tables)."""

from __future__ import annotations

import pandas as pd
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from genmarket.market.reports.document import Doc, md_escape

HOSTILE = [
    "a|b", "*bold* and _it_", "# heading", "`code`", "<script>alert(1)</script>",
    "[x](javascript:alert(1))", "![img](http://example.com/x.png)", "line one\n# line two",
    "1. first", "- item", "> quote", "---", "back\\slash|", "&lt;b&gt; &amp;", "~~gone~~",
    "<img src=x onerror=alert(1)>", "name\r\n| x | y |\r\n|---|---|", "a\\|b", "   indented code",
]
TEXTS = st.text(alphabet="ab1 #>*_`[]()|<>&!\\-+=.:~\n\r\t", min_size=1, max_size=40)
MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _shown(text: str) -> str:
    """What a reader must see: the text on one line, without the spaces Markdown trims."""
    return " ".join(text.splitlines()).strip()


def _inline_text(token) -> str:
    """The literal text of an inline token; fails if it holds any markup (emphasis, code,
    link, image, raw HTML, line break)."""
    kinds = {child.type for child in token.children}
    assert kinds <= {"text"}, f"markup {kinds - {'text'}} in {token.content!r}"
    return "".join(child.content for child in token.children)


def _paragraph_text(markdown: str) -> str:
    tokens = MD.parse(markdown)
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], \
        f"{markdown!r} is not one paragraph: {[t.type for t in tokens]}"
    return _inline_text(tokens[1])


def test_hostile_texts_stay_one_literal_paragraph():
    for text in HOSTILE:
        assert _paragraph_text(md_escape(text)) == _shown(text), text


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_any_text_stays_one_literal_paragraph(text):
    assume(_shown(text))
    assert _paragraph_text(md_escape(text)) == _shown(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(TEXTS, min_size=3, max_size=3), min_size=1, max_size=4), TEXTS)
def test_a_table_keeps_its_shape_and_its_cells_literal(rows, title):
    doc = Doc(title)
    doc.heading(title)
    doc.findings([title, "the second finding"])
    doc.table(pd.DataFrame(rows, columns=["group|name", "*query*", "<b>"]))
    tokens = MD.parse(doc.markdown("run|<x>"))
    types = [t.type for t in tokens]
    assert types.count("table_open") == 1 and types.count("heading_open") == 2
    assert types.count("bullet_list_open") == 1 and types.count("list_item_open") == 2
    cells = [t for t in tokens[types.index("table_open"):] if t.type == "inline"]
    expected = ["group|name", "*query*", "<b>", *(c for r in rows for c in r)]
    assert len(cells) == len(expected), "the table gained or lost cells"
    assert [_inline_text(c) for c in cells] == [_shown(c) for c in expected]
    h1 = tokens[types.index("heading_open") + 1]
    if _shown(title):
        assert _inline_text(h1) == _shown(title)


def test_the_hostile_report_has_no_html_link_or_image():
    doc = Doc(HOSTILE[4])
    for text in HOSTILE:
        doc.heading(text, 3)
        doc.text(text)
    doc.findings(HOSTILE)
    doc.table(pd.DataFrame({"name": HOSTILE, "query": list(reversed(HOSTILE))}))
    tokens = MD.parse(doc.markdown("folder"))
    flat = [t for tok in tokens for t in (tok, *(tok.children or ()))]
    bad = {t.type for t in flat} & {"html_block", "html_inline", "link_open", "image", "code_inline",
                                    "code_block", "fence", "em_open", "strong_open", "s_open",
                                    "blockquote_open", "ordered_list_open", "hr"}
    assert not bad, bad
    headings = [t for t in tokens if t.type == "heading_open"]
    assert len(headings) == 1 + len(HOSTILE)  # the title and one per heading, no injected one
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 1 + len(HOSTILE)
