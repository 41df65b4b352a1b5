"""The documentation stays true: the generated CLI page matches the code, every relative
link and anchor resolves, and README stays a front page that leads to every other page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sentibench import cli_reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md"]
MAX_README_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link or heading inside one is not one)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: link targets dropped, lowercase, punctuation
    other than '-' and '_' removed, each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(text: str) -> list[str]:
    """Link targets in the prose (not in code blocks or inline code)."""
    return [m.group(1) for line in prose_lines(text)
            for m in LINK.finditer(INLINE_CODE.sub("", line))]


def broken_links(page: Path) -> list[str]:
    """'page: target (why)' for each relative link whose file or anchor is missing;
    http(s) and mailto links are not fetched."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path_part, _, anchor = target.partition("#")
        file = (page.parent / path_part).resolve() if path_part else page
        if not file.exists():
            problems.append(f"{page.name}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(
                file.read_text(encoding="utf-8")):
            problems.append(f"{page.name}: {target} (no such heading)")
    return problems


def test_cli_page_is_current():
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    fresh = cli_reference.render()
    assert current == fresh, f"docs/cli.md is stale: run `{cli_reference.REGENERATE}`"


def test_check_flag_reports_a_stale_page_on_one_line(tmp_path, capsys):
    page = tmp_path / "cli.md"
    page.write_text(cli_reference.render(), encoding="utf-8")
    assert cli_reference.main(["--check", str(page)]) == 0
    page.write_text("# out of date\n", encoding="utf-8")
    assert cli_reference.main(["--check", str(page)]) == 1
    err = capsys.readouterr().err
    assert err == f"{page} is stale: regenerate it with `{cli_reference.REGENERATE}`\n"


def test_reference_generation_does_not_import_torch():
    code = "import sys, sentibench.cli_reference; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "False\n"


def test_slug_follows_githubs_rule():
    assert slug("Measured on a GPU (one H100)") == "measured-on-a-gpu-one-h100"
    assert slug("`bench --set` keys") == "bench---set-keys"
    assert slug("Presets: `reference`, `spam-ablations` and `best`") == \
        "presets-reference-spam-ablations-and-best"
    assert slug("snake_case & kebab-case") == "snake_case--kebab-case"
    assert slug("See [the book](https://example.com)") == "see-the-book"


def test_repeated_headings_get_numbered_anchors():
    text = "# Speed\n## Speed\n```\n# Speed\n```\n### Speed\n"
    assert anchors(text) == {"speed", "speed-1", "speed-2"}


def test_a_broken_link_is_detected(tmp_path):
    (tmp_path / "other.md").write_text("# Real heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#real-heading) [gone](missing.md) "
                    "[bad](other.md#no-heading) [self](#nowhere) `[code](missing.md)`\n"
                    "```\n[fenced](missing.md)\n```\n[web](https://example.com/x)\n",
                    encoding="utf-8")
    assert broken_links(page) == ["page.md: missing.md (no such file)",
                                  "page.md: other.md#no-heading (no such heading)",
                                  "page.md: #nowhere (no such heading)"]


def test_every_relative_link_and_anchor_resolves():
    problems = [p for page in PAGES for p in broken_links(page)]
    assert problems == []


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_readme_links_every_page():
    linked = {(ROOT / t.partition("#")[0]).resolve()
              for t in links(README.read_text(encoding="utf-8"))
              if not re.match(r"^https?:", t) and t.partition("#")[0]}
    wanted = {p.resolve() for p in PAGES[1:]} | {(ROOT / "LICENSE").resolve()}
    assert sorted(str(p.relative_to(ROOT)) for p in wanted - linked) == []
