"""The report document: markdown and a self-contained HTML page built side by side.

Images are embedded in the HTML as data URIs and the style sheet is inline, so the page needs
no network and no files beside it.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.report.formatting import cell
from kdtune.report.formatting import signed as signed_text

_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>")]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1150px;margin:0 auto;padding:1.5em 2em;background:#fff}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fbfbfb}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.state{font-weight:bold}
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?[\d.,]+(e[+-]?\d+)?x?", text))


class Doc:
    """Builds the markdown and the HTML report side by side."""

    def __init__(self, exp_dir: Path):
        self.exp_dir = exp_dir
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

    def table(self, frame: pd.DataFrame, signed: tuple[str, ...] = ()) -> None:
        """A table; numbers in the ``signed`` columns print with their sign (``+0.0123``)."""
        cols = list(frame.columns)

        def fmt(c: str, v: Any) -> str:
            if c in signed and isinstance(v, float) and not math.isnan(v):
                return signed_text(v)
            return cell(v)

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
        rel = path.relative_to(self.exp_dir).as_posix()
        self.md += [f"![{alt}]({rel})", ""]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def markdown(self, text: str) -> None:
        self.md += [text.strip(), ""]
        self.html.append(markdown_to_html(text))

    def render_md(self) -> str:
        return "\n".join(self.md).rstrip() + "\n"

    def render_html(self, title: str) -> str:
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<link rel=\"icon\" href=\"data:,\"><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><main>\n" + "\n".join(self.html)
                + "\n</main></body></html>\n")


def markdown_to_html(text: str) -> str:
    """A small converter for the markdown kdtune writes: headings, tables, lists, paragraphs."""
    out: list[str] = []
    lines = text.strip().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(len(m.group(1)) + 2, 6)  # nested under the report's own headings
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            rows = [r for r in block if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
            head, body = rows[0], rows[1:]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                           for r in body) + "</tbody></table>")
        elif re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>")
        elif line.startswith("```"):
            i += 1
            code = []
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1
            out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#|\||\s*[-*]\s|```)",
                                                                       lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)
