"""The report document: markdown and a self-contained HTML page built side by side.

Images are embedded in the HTML as data URIs and the style sheet is inline, so the page needs
no network and no files beside it. Numbers are printed by :mod:`kdtune.formatting`.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.formatting import num, signed

_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>")]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1150px;margin:0 auto;padding:1.5em 2em;background:#fff}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fbfbfb}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}pre{background:#f6f6f6;padding:.5em}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
"""

#: Headings of included markdown files (retrain/summary.md, export.md) sit under a report section.
NESTED_SHIFT = 2


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?[\d.,]+(e[+-]?\d+)?x?", text))


def nest_headings(text: str, shift: int = NESTED_SHIFT) -> str:
    """Markdown with every heading ``shift`` levels deeper (at most level 6)."""
    return re.sub(r"(?m)^(#{1,6})(\s)", lambda m: "#" * min(len(m.group(1)) + shift, 6) + m.group(2),
                  text)


class Doc:
    """Builds the markdown and the HTML report side by side."""

    def __init__(self, base: Path):
        self.base = base  # image links in report.md are relative to this folder
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md += ["#" * level + " " + text, ""]
        self.html.append(f"<h{level}>{_inline(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{_inline(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        self.md += [f"- {i}" for i in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")

    def table(self, frame: pd.DataFrame, signed_cols: tuple[str, ...] = (),
              digits: Mapping[str, int] | None = None) -> None:
        """A table; ``signed_cols`` print with their sign, ``digits`` sets decimals per column."""
        cols = list(frame.columns)
        digits = digits or {}

        def fmt(c: str, v: Any) -> str:
            if c in signed_cols and isinstance(v, float) and not math.isnan(v):
                return signed(v)
            return num(v, digits.get(c, 4))

        rows = [[fmt(c, r[c]) for c in cols] for _, r in frame.iterrows()]
        self.md += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
        self.md += ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in rows]
        self.md.append("")
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(
            f"<td{' class=num' if _is_number(x) else ''}>{html.escape(x)}</td>" for x in row)
            + "</tr>" for row in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, path: Path, alt: str) -> None:
        rel = path.relative_to(self.base).as_posix()
        self.md += [f"![{alt}]({rel})", ""]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def markdown(self, text: str) -> None:
        """Markdown written elsewhere (retrain, export), its headings nested under the report's."""
        self.md += [nest_headings(text.strip()), ""]
        self.html.append(markdown_to_html(text))

    def render_md(self) -> str:
        return "\n".join(self.md).rstrip() + "\n"

    def render_html(self, title: str) -> str:
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<link rel=\"icon\" href=\"data:,\"><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><main>\n" + "\n".join(self.html)
                + "\n</main></body></html>\n")


def _table_html(lines: list[str]) -> str:
    block = [[c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))] for ln in lines]
    rows = [r for r in block if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
    head, body = rows[0], rows[1:]
    cell = lambda c: _inline(c.replace("\\|", "|"))  # noqa: E731
    return ("<table><thead><tr>" + "".join(f"<th>{cell(c)}</th>" for c in head)
            + "</tr></thead><tbody>" + "".join(
                "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
            + "</tbody></table>")


def _take(lines: list[str], i: int, pattern: str) -> tuple[list[str], int]:
    """Consecutive lines from ``i`` matching ``pattern`` and the index after them."""
    block = []
    while i < len(lines) and re.match(pattern, lines[i]):
        block.append(lines[i])
        i += 1
    return block, i


def markdown_to_html(text: str) -> str:
    """A small converter for the markdown kdtune writes: headings, tables, lists, code, paragraphs."""
    out: list[str] = []
    lines = text.strip().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(len(m.group(1)) + NESTED_SHIFT, 6)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            block, i = _take(lines, i, r"\s*\|")
            out.append(_table_html(block))
        elif re.match(r"\s*[-*]\s+", line):
            block, i = _take(lines, i, r"\s*[-*]\s+")
            items = [_inline(re.sub(r"^\s*[-*]\s+", "", x)) for x in block]
            out.append("<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>")
        elif line.startswith("```"):
            code, i = _take(lines, i + 1, r"(?!```)")
            out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
            i += 1
        else:
            para, i = _take(lines, i, r"(?!#|\||\s*[-*]\s|```)\s*\S")
            out.append(f"<p>{_inline(' '.join(p.strip() for p in para))}</p>")
    return "\n".join(out)
