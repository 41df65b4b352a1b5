"""report.html: self-contained (every image inline, nothing fetched), complete, rebuilt
byte for byte from the same run directories."""

from __future__ import annotations

import base64
import html.parser
from pathlib import Path

import pytest

from sentibench.cli import main
from tests.helpers import noisy_bench


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture()
def bench(tmp_path) -> Path:
    return noisy_bench(tmp_path)


def test_the_page_holds_every_row_and_figure_inline(bench):
    page = _Page()
    page.feed((bench / "report.html").read_text(encoding="utf-8"))
    rows = ["dummy", "logreg", "logreg-tfidf", "ensemble-top2"]
    headings = [attrs.get("id") for tag, attrs in page.tags if tag == "h3"]
    assert sorted(headings) == sorted(rows)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(rows) + 1  # one per row (confusion, reliability) + accuracy plot
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe")]
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert value.startswith(("data:", "#")) or not value, value  # no external URL
    text = " ".join(page.text)
    assert "Which differences are real" in text and "tied" in text
    assert "Ten most confidently wrong test examples" in text
    assert '"command": "sentibench bench --models dummy,logreg,logreg-tfidf' in text
    assert '"sha256"' in text and '"packages"' in text  # checksums and library versions


def test_the_page_is_rebuilt_byte_for_byte(bench):
    first = (bench / "report.html").read_bytes()
    (bench / "report.html").unlink()
    assert main(["report", str(bench)]) == 0
    assert (bench / "report.html").read_bytes() == first


def test_review_breaks_become_line_breaks_and_the_rest_is_escaped():
    from sentibench.report.html_page import snippet

    assert snippet("Good.<br /><br />Bad <i>x</i> & done<BR>end", 300) == (
        "Good.<br>Bad &lt;i&gt;x&lt;/i&gt; &amp; done<br>end")
    assert snippet("abcdef<br />ghij", 8) == "abcdef<br>..."


def test_markdown_marks_become_html():
    from sentibench.report.html_page import inline

    assert inline("**tied** when `p` < 0.05") == "<b>tied</b> when <code>p</code> &lt; 0.05"


def test_the_intro_and_notes_follow_the_data_set(bench):
    page = (bench / "report.html").read_text(encoding="utf-8")
    assert "IMDb" not in page and "ch06" not in page and "chapter 6" not in page
    assert "RoBERTa" not in page  # the reference's note only beside the rows it is about
    assert page.count('<meta name="viewport"') == 1
    assert "nothing is published for this data set" in page
