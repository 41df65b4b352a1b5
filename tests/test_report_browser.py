"""report.html in real headless Chromium, at a desktop width and at a phone's 400 px: the
verdict comes first, nothing widens the page, settings stay folded, images fit, and no
Markdown mark or review markup shows as text."""

from __future__ import annotations

import pandas as pd
import pytest

from sentibench.report.build import build_report
from tests.browser import render
from tests.helpers import noisy_bench

LONG_WORD = "x" * 120  # one unbreakable token: must wrap, not widen the page


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The baselines' bench, its test texts written like IMDb reviews (``<br />`` tags)."""
    root = tmp_path_factory.mktemp("browser")
    bench = noisy_bench(root)
    test_csv = root / "data" / "test.csv"
    frame = pd.read_csv(test_csv, dtype=str, keep_default_na=False)
    frame["text"] = frame["text"] + f"<br /><br />Second paragraph {LONG_WORD} <b>end</b>"
    frame.to_csv(test_csv, index=False)
    build_report(bench)
    return bench / "report.html"


@pytest.mark.parametrize(("width", "phone"), [(1280, False), (400, True)])
def test_the_page_reads_at_desktop_and_phone_width(page, tmp_path, width, phone):
    shot = tmp_path / f"report-{width}.png"
    seen = render(page, width, shot, phone=phone)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["innerWidth"] == width  # the viewport tag: a phone lays out at 400 px
    assert seen["scrollWidth"] <= seen["innerWidth"]  # no sideways scrolling of the page
    assert seen["firstClass"] == "verdict" and seen["firstParagraph"].startswith("Verdict: ")
    assert seen["details"] and not any(seen["details"])  # every fold starts closed
    assert seen["presOutsideDetails"] == 0 and seen["visiblePres"] == 0
    assert seen["tablesUnwrapped"] == 0
    assert all(right <= width for right in seen["wrappers"])
    assert len(seen["images"]) == 5
    assert all(shown <= box + 0.5 and shown <= natural for shown, box, natural in seen["images"])
    text = seen["text"]
    assert "**" not in text and "<br" not in text
    assert "<b>end</b>" in text  # any other markup in a review is escaped, shown as typed
    assert "Second paragraph" in text and "Ten most confidently wrong test examples" in text
