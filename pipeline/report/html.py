"""The report as one self-contained HTML file: inline CSS, figures as base64 data URIs, no external requests."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from pipeline.report.document import Document, Figure, Heading, Paragraph, Table

# The page may load nothing from anywhere: a policy that makes the browser refuse (and log) any attempt.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink:#1d1d1f; --muted:#5f6368; --rule:#dcdfe3; --ok:#137333; --bad:#b3261e; --accent:#1f4e99; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f6f7f9; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 16px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
nav { font-size: 13px; color: var(--muted); margin-bottom: 16px; }
nav a { color: var(--accent); margin-right: 12px; text-decoration: none; }
.headline { font-size: 17px; background: #eef3fb; border-left: 5px solid var(--accent); padding: 12px 16px;
            margin: 10px 0; }
.warning { background: #fdecea; border-left: 5px solid var(--bad); padding: 12px 16px; margin: 10px 0; }
.note { color: var(--muted); font-size: 14px; margin: 8px 0; }
figure { margin: 16px 0 24px; }
figure img { width: 100%; max-width: 980px; height: auto; border: 1px solid var(--rule); }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 4px; }
.table-wrap { overflow-x: auto; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; min-width: 50%; }
caption { text-align: left; font-weight: 600; font-size: 15px; padding: 6px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
th { background: #f1f3f4; position: sticky; top: 0; }
tr:hover td { background: #fafbfc; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
.table-note { color: var(--muted); font-size: 13px; margin: 4px 0 20px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 90%; background: #f1f3f4;
       padding: 0 3px; border-radius: 3px; }
@media print { body { background: #fff; } main { padding: 0; } th { position: static; } }
"""


def _inline(text: str) -> str:
    """Escape, then turn **bold** and `code` into tags and mark ✓/✗ verdicts."""
    out = html.escape(str(text), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"×10\^(−?\d+)", r"×10<sup>\1</sup>", out)
    out = out.replace("✓", '<span class="ok">✓</span>').replace("✗", '<span class="bad">✗</span>')
    return out


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def _table(block: Table) -> str:
    head = "".join(f"<th scope=\"col\">{_inline(h)}</th>" for h in block.headers)
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    slug = f' id="table-{html.escape(block.slug)}"' if block.slug else ""
    note = f'<p class="table-note">{_inline(block.note)}</p>' if block.note else ""
    return (f'<div class="table-wrap"><table{slug} data-table="{html.escape(block.slug)}">'
            f"<caption>{_inline(block.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>{note}")


def _figure(block: Figure) -> str:
    slug = html.escape(block.slug)
    alt = html.escape(block.caption, quote=True)
    return (f'<figure id="figure-{slug}" data-figure="{slug}"><img src="{data_uri(block.path)}" alt="{alt}">'
            f"<figcaption>{_inline(block.caption)}</figcaption></figure>")


def _anchor(text: str) -> str:
    return "section-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def to_html(doc: Document) -> str:
    """The whole report as one HTML page that needs nothing but itself to display."""
    parts = []
    sections = [b.text for b in doc.blocks if isinstance(b, Heading)]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f'<h{block.level} id="{_anchor(block.text)}">{_inline(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            css = {"headline": "headline", "warning": "warning", "note": "note"}.get(block.kind, "")
            role = ' role="alert"' if block.kind == "warning" else ""
            parts.append(f'<p class="{css}"{role}>{_inline(block.text)}</p>' if css else f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Figure):
            parts.append(_figure(block))
    nav = "".join(f'<a href="#{_anchor(s)}">{html.escape(s)}</a>' for s in sections)
    title = html.escape(doc.title)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{title}</title><style>{CSS}</style></head>\n<body><main>"
        f"<h1>{title}</h1><nav>{nav}</nav>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )
