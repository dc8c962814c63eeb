"""The report as a list of blocks (headings, paragraphs, tables, figures), rendered to Markdown here."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Plain text; ``**bold**`` and `` `code` `` are the only markup, understood by both renderers."""

    text: str
    kind: str = "text"  # "text", "headline", "warning" or "note"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    slug: str = ""


@dataclass
class Figure:
    path: Path  # the PNG, inside the run's figures/ folder
    caption: str
    slug: str = ""


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(b for b in blocks if b is not None)


# ---------------------------------------------------------------- number formatting (shared by tables)

def fmt(value, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, a real minus sign, '—' when absent."""
    if value is None or isinstance(value, bool):
        return "—"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}×10^{int(exponent)}"
    return text.replace("-", "−")


def fmt_interval(interval, digits: int = 3) -> str:
    """``[lo, hi]`` or '—'."""
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return "—"
    return f"[{fmt(interval[0], digits)}, {fmt(interval[1], digits)}]"


def fmt_flops(value) -> str:
    """Training compute in FLOPs, e.g. '1.2×10^21 FLOPs'."""
    if value is None:
        return "—"
    return f"{fmt(value, 3)} FLOPs"


def fmt_factor(value) -> str:
    """An extrapolation factor: '3.2×', '95×', '1,000×'."""
    if value is None:
        return "—"
    return f"{value:.2g}×" if value < 10 else f"{value:,.0f}×"


def fmt_percent(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.{digits}f}%"


# ---------------------------------------------------------------- Markdown

def plural(n: int, word: str) -> str:
    """'1 problem', '2 problems'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, relative_to: Path) -> str:
    """The whole report as GitHub-flavoured Markdown; figure links are relative to ``relative_to``."""
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Paragraph):
            prefix = {"headline": "> ", "warning": "> **Warning:** ", "note": "> "}.get(block.kind, "")
            out += [prefix + block.text, ""]
        elif isinstance(block, Table):
            out += [f"**{block.title}**", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            out.append("|" + "|".join("---" for _ in block.headers) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
            if block.note:
                out += [block.note, ""]
        elif isinstance(block, Figure):
            rel = Path(os.path.relpath(Path(block.path).resolve(), Path(relative_to).resolve()))
            out += [f"![{block.caption}]({rel.as_posix()})", "", f"*{block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"
