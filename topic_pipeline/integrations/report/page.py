"""The report as one self-contained HTML page: plotly.js inline once, every figure, captions and tables.

Everything that comes from the user's data (trial keys, class names, warnings, topic words) is escaped;
inside the figures plotly escapes it itself (its JSON writes ``<`` as ``\\u003c``).
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.caption { color: #555; font-size: 0.9em; max-width: 70em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
.warnings li { color: #8a4b00; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ddd; padding: 2px 6px; }
th { background: #f4f4f4; } code { font-size: 0.95em; }
"""


@dataclasses.dataclass
class Section:
    anchor: str  # the plot's file name: the section's id and its PNG
    title: str
    caption: str = ""
    figure_html: str = ""  # a plotly div, empty when the plot could not be drawn
    image: str | None = None  # the PNG's file name, beside the page
    notes: list[str] = dataclasses.field(default_factory=list)  # why something is missing
    table_html: str = ""


def figure_div(figure, anchor: str) -> str:
    import plotly.io as pio

    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=f"plot-{anchor}",
        config={"displaylogo": False, "responsive": True},
    )


def table_html(frame: pd.DataFrame) -> str:
    """A plain HTML table, every cell escaped, numbers to three decimals."""
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.3f}", border=0)


def render(title: str, summary: Sequence[str], warnings: Sequence[str], sections: Sequence[Section]) -> str:
    from plotly.offline import get_plotlyjs

    has_figures = any(section.figure_html for section in sections)
    # Inline, never a CDN: the page must open on a machine without internet, and as an MLflow artifact.
    script = f'<script type="text/javascript">{get_plotlyjs()}</script>' if has_figures else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>",
    ]
    if warnings:
        parts.append(
            '<h2>Warnings</h2><ul class="warnings">' + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>"
        )
    parts.append("<p>" + " · ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections) + "</p>")
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        parts.extend(f'<p class="note">{html.escape(note)}</p>' for note in section.notes)
        if section.caption:
            parts.append(f'<p class="caption">{html.escape(section.caption)}</p>')
        parts.append(section.figure_html)
        if section.image:
            parts.append(
                f'<p class="caption">Static image: <a href="{html.escape(section.image)}">{html.escape(section.image)}</a></p>'
            )
        parts.append(section.table_html)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
