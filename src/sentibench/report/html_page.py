"""``report.html``: the whole comparison in one self-contained file that opens offline.

Images are embedded as base64 PNG, styles are inline, nothing is fetched (no script, font or
stylesheet from anywhere). Built from the run directories alone and from nothing that
changes between builds, so the same runs give the same bytes. A reader who was not there
can check every number: each row lists its exact command, settings, library versions,
machine and data checksums.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sentibench.core.fileio import atomic_write_text
from sentibench.report.compare import RunStats, format_stats
from sentibench.report.curves import CURVE_PLOT, curve_lines
from sentibench.report.plots import ACCURACY_PLOT, LOSS_PLOT, row_figure
from sentibench.report.rows import Row
from sentibench.report.tables import dataset_of, format_table, intro
from sentibench.report.tuning import tuning_lines
from sentibench.report.verdict import ordered_stats, ranked, verdict
from sentibench.run.results import read_predictions

HTML_FILE = "report.html"
WRONG_EXAMPLES = 10
SNIPPET_CHARS = 300
# Readable from 400 px up: wide tables scroll inside their own box, never the page.
_STYLE = ("*{box-sizing:border-box}"
          "body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;"
          "padding:.8em;line-height:1.45;color:#222}"
          "p,li,summary{overflow-wrap:anywhere}"
          ".verdict{font-size:1.08em;background:#eef5ee;border-left:4px solid #3a8a4a;"
          "padding:.6em .8em}"
          ".scroll{overflow-x:auto;max-width:100%;margin:.6em 0}"
          "table{border-collapse:collapse;font-size:90%}"
          "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
          "td:first-child,th:first-child{text-align:left}"
          "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:85%;"
          "white-space:pre-wrap;overflow-wrap:anywhere}"
          "img{display:block;max-width:100%;height:auto;margin:.6em 0}"
          "summary{cursor:pointer;color:#245}")
# The rows the note is about; it means nothing on a page without them.
REFERENCE_NOTE_MODELS = frozenset({"roberta", "deberta-v3-base"})
REFERENCE_NOTE = (
    "The reference contradicts itself on two rows: its summary table gives RoBERTa-large "
    "92.95 % and DeBERTa-v3-base 94.69 %, while each model's own printed log says the "
    "opposite (the figures shown here); treat both as unconfirmed until re-run.")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_CODE = re.compile(r"`([^`]+)`")
_BREAK = re.compile(r"<br\s*/?>", re.I)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def inline(text: str) -> str:
    """Markdown's **bold** and `code` as HTML, everything else escaped: the same prose
    serves results.md and the page, and no Markdown mark shows on the page."""
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", _e(" ".join(text.split()))))


def markdown_table(lines: Sequence[str]) -> str:
    """A Markdown table (header, alignment row, rows) as an HTML table in a box that
    scrolls sideways, so a narrow screen never has to."""
    cells = [[c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
             for line in lines if line.startswith("|")]
    if len(cells) < 2:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
                   for row in cells[2:])
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _image(data: bytes, alt: str) -> str:
    return (f'<img alt="{_e(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode("ascii")}">')


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A review as safe HTML: its ``<br />`` tags (IMDb's paragraph breaks) become line
    breaks, everything else is escaped, and it is cut to about ``limit`` characters."""
    parts = [" ".join(part.split()) for part in _BREAK.split(text)]
    out: list[str] = []
    left = limit
    for part in filter(None, parts):
        if len(part) > left:
            out.append(part[:max(0, left - 3)] + "...")
            break
        out.append(part)
        left -= len(part)
    return "<br>".join(_e(part) for part in out)


def _wrong_examples(row: Row) -> str:
    """The test rows the run got wrong with the highest confidence (texts shortened)."""
    res = row.result
    saved = read_predictions(row.run_dir, res.labels) if row.run_dir else None
    test_csv = Path(res.data.get("data_dir", "")) / "test.csv"
    if saved is None or not test_csv.is_file():
        return "<p>(test texts or predictions not available)</p>"
    labels, probs = saved
    texts = pd.read_csv(test_csv, dtype=str, keep_default_na=False,
                        nrows=len(labels))["text"].tolist()
    predicted = probs.argmax(1)
    wrong = [i for i in range(len(labels)) if predicted[i] != labels[i]]
    wrong.sort(key=lambda i: (-probs[i, predicted[i]], i))
    items = [f"<li>row {i}: true <b>{_e(res.labels[labels[i]])}</b>, predicted "
             f"<b>{_e(res.labels[predicted[i]])}</b> ({probs[i, predicted[i]]:.3f}):<br>"
             f"{snippet(texts[i])}</li>" for i in wrong[:WRONG_EXAMPLES]]
    return f"<ol>{''.join(items)}</ol>" if items else "<p>No test row was wrong.</p>"


def _row_section(row: Row, stat: RunStats | None) -> str:
    """One run: its figure, its worst mistakes, and how it ran (folded: 40-80 lines)."""
    res = row.result
    parts = [f'<h3 id="{_e(row.name)}">{_e(row.name)}</h3>']
    confusion = res.metrics.get("test", {}).get("confusion_matrix") if res.metrics else None
    if confusion is not None:
        bins = stat.reliability if stat is not None else []
        parts.append(_image(row_figure(row.name, res.labels, confusion, bins),
                            f"{row.name}: confusion matrix and reliability"))
    parts.append(f"<h4>Ten most confidently wrong test examples</h4>{_wrong_examples(row)}")
    record = {"command": " ".join(res.command), "settings": res.config,
              "environment": res.environment, "data": res.data}
    parts.append("<details><summary>How it ran: command, settings, environment, data "
                 "checksums</summary><pre>"
                 + _e(json.dumps(record, indent=2, sort_keys=True)) + "</pre></details>")
    return "\n".join(parts)


def _needs_reference_note(rows: Sequence[Row]) -> bool:
    return any(row.data == "imdb" and row.model in REFERENCE_NOTE_MODELS
               and row.reference is not None for row in rows)


def _top(rows: Sequence[Row], all_stats: Sequence[RunStats]) -> list[str]:
    """Title, verdict, the data set, the table, and what its columns mean (folded)."""
    what, columns = intro(rows)
    body = ["<h1>sentibench results</h1>",
            '<p class="verdict">' + inline(verdict(rows, all_stats)).replace(
                "Verdict:", "<b>Verdict:</b>", 1) + "</p>",
            f"<p>{inline(what)}</p>", markdown_table(format_table(rows).splitlines()),
            f"<details><summary>What the columns mean</summary><p>{inline(columns)}</p>"
            "</details>"]
    if _needs_reference_note(rows):
        body.append(f"<p><i>{_e(REFERENCE_NOTE)}</i></p>")
    return body


def _tuning_html(lines: Sequence[str]) -> list[str]:
    """The tuning section's Markdown (headings, paragraphs, tables) as HTML."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            out.append(markdown_table(table))
            table = []
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 3)
            out.append(f"<h{level}>{_e(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    return out


def build_html(bench: Path, rows: Sequence[Row], all_stats: Sequence[RunStats]) -> Path:
    """Write ``bench/report.html`` from the rows, their statistics and the saved plots."""
    stats_by_name = {s.name: s for s in all_stats}
    body = _top(rows, all_stats)
    stats_lines = format_stats(ordered_stats(all_stats, rows))
    if stats_lines:
        body += [f"<h2>{_e(stats_lines[1].lstrip('# '))}</h2>", f"<p>{inline(stats_lines[3])}</p>",
                 markdown_table(stats_lines[5:])]
    body += _tuning_html(tuning_lines(rows)) + _tuning_html(curve_lines(rows))
    figures = [_image((bench / name).read_bytes(), alt) for name, alt in (
        (ACCURACY_PLOT, "test accuracy against training time"), (LOSS_PLOT, "loss curves"),
        (CURVE_PLOT, "test accuracy against labelled training examples"))
        if (bench / name).is_file()]
    if figures:
        body += ["<h2>Figures</h2>", *figures]
    body.append("<h2>Rows</h2>")
    body += [_row_section(row, stats_by_name.get(row.name)) for row in ranked(rows)
             if row.result is not None]
    dataset = dataset_of(rows)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>sentibench results: {_e(dataset)}</title><style>{_STYLE}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = bench / HTML_FILE
    atomic_write_text(path, page)
    return path
