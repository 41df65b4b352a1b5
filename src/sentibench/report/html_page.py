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
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sentibench.report.compare import RunStats, format_stats
from sentibench.report.plots import ACCURACY_PLOT, LOSS_PLOT, row_figure
from sentibench.report.rows import Row
from sentibench.report.tables import format_table

HTML_FILE = "report.html"
WRONG_EXAMPLES = 10
SNIPPET_CHARS = 300
_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.4}"
          "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
          "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
          "td:first-child,th:first-child{text-align:left}"
          "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:85%}"
          "img{max-width:100%}")
REFERENCE_NOTE = (
    "The reference contradicts itself on two rows: its summary table gives RoBERTa-large "
    "92.95 % and DeBERTa-v3-base 94.69 %, while each model's own printed log says the "
    "opposite (the figures shown here); treat both as unconfirmed until re-run.")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def markdown_table(lines: Sequence[str]) -> str:
    """A Markdown table (header, alignment row, rows) as an HTML table."""
    cells = [[c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
             for line in lines if line.startswith("|")]
    if len(cells) < 2:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
                   for row in cells[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(data: bytes, alt: str) -> str:
    return (f'<img alt="{_e(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode("ascii")}">')


def _wrong_examples(row: Row) -> str:
    """The test rows the run got wrong with the highest confidence (texts shortened)."""
    from sentibench.run.results import read_predictions

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
    items = []
    for i in wrong[:WRONG_EXAMPLES]:
        text = " ".join(texts[i].split())
        text = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 3] + "..."
        items.append(f"<li>row {i}: true <b>{_e(res.labels[labels[i]])}</b>, predicted "
                     f"<b>{_e(res.labels[predicted[i]])}</b> ({probs[i, predicted[i]]:.3f}): "
                     f"{_e(text)}</li>")
    return f"<ol>{''.join(items)}</ol>" if items else "<p>No test row was wrong.</p>"


def _row_section(row: Row, stat: RunStats | None) -> str:
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
    parts.append("<h4>How it ran</h4><pre>" + _e(json.dumps(record, indent=2, sort_keys=True))
                 + "</pre>")
    return "\n".join(parts)


def build_html(bench: Path, rows: Sequence[Row], all_stats: Sequence[RunStats],
               header: str) -> Path:
    """Write ``bench/report.html`` from the rows, their statistics and the saved plots."""
    from sentibench.core.fileio import atomic_write_text

    stats_by_name = {s.name: s for s in all_stats}
    title, _, intro = header.partition("\n")
    plain = intro.strip().replace("**", "").replace("`", "")  # Markdown marks, not HTML
    body = [f"<h1>{_e(title.lstrip('# '))}</h1>", f"<p>{_e(plain)}</p>",
            markdown_table(format_table(rows).splitlines())]
    if any(row.reference is not None for row in rows) and (rows[0].data == "imdb"):
        body.append(f"<p><i>{_e(REFERENCE_NOTE)}</i></p>")
    stats_lines = format_stats(all_stats)
    if stats_lines:
        body += [f"<h2>{_e(stats_lines[1].lstrip('# '))}</h2>", f"<p>{_e(stats_lines[3])}</p>",
                 markdown_table(stats_lines[5:])]
    for name, alt in ((ACCURACY_PLOT, "test accuracy against training time"),
                      (LOSS_PLOT, "loss curves")):
        if (bench / name).is_file():
            body.append(_image((bench / name).read_bytes(), alt))
    body.append("<h2>Rows</h2>")
    body += [_row_section(row, stats_by_name.get(row.name)) for row in rows
             if row.result is not None]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title.lstrip('# '))}</title><style>{_STYLE}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = bench / HTML_FILE
    atomic_write_text(path, page)
    return path
