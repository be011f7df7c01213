"""The report as one self-contained HTML page: plotly.js inline once, every figure, captions and tables.

plotly.js and each figure's JSON are in the page gzipped and base64-encoded, and unpacked by the browser
(``DecompressionStream``) before the figures are drawn: uncompressed, plotly.js alone is most of the page,
and the packed page is quicker to download from MLflow and to open. Base64, plain ASCII, survives a
viewer that reads the page as text, where raw compressed bytes would not. A browser without
``DecompressionStream`` gets a note pointing to the PNG images instead.

Everything that comes from the user's data (trial keys, class names, warnings, topic words) is escaped;
inside the figures plotly escapes it itself (its JSON writes ``<`` as ``\\u003c``), and base64 holds
no markup at all.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import html
import json
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


CONFIG = {"displaylogo": False, "responsive": True}
# plotly's height of a figure whose layout sets none.
DEFAULT_HEIGHT = 450

# Unpacks plotly.js once, then draws each figure as it comes near the screen, one at a time in the order
# they come: a long report opens as quickly as its first screen draws, and the rest follow on scrolling.
_LOADER = """
(async (config) => {
  const divs = [...document.querySelectorAll("div[data-figure]")];
  if (!divs.length) return;
  if (typeof DecompressionStream === "undefined") {
    document.getElementById("no-plots").hidden = false;
    return;
  }
  const unpack = async (text) => {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  };
  const library = document.createElement("script");
  library.text = await unpack(document.getElementById("plotly-js").textContent);
  document.head.appendChild(library);
  const draw = async (div) => {
    try {
      const figure = JSON.parse(await unpack(div.dataset.figure));
      await Plotly.newPlot(div, figure.data, figure.layout, config);
    } catch (error) {
      div.textContent = "This plot could not be drawn here (" + error + "); its PNG image is linked below.";
    }
  };
  let queue = Promise.resolve();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries.filter((e) => e.isIntersecting)) {
      observer.unobserve(entry.target);
      queue = queue.then(() => draw(entry.target));
    }
  }, {rootMargin: "50% 0px"});
  divs.forEach((div) => observer.observe(div));
})"""


def pack(text: str) -> str:
    """``text`` gzipped (no timestamp: the same report gives the same bytes) and base64-encoded."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def unpack(payload: str) -> str:
    return gzip.decompress(base64.b64decode(payload)).decode("utf-8")


@functools.lru_cache(maxsize=1)
def _packed_plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return pack(get_plotlyjs())


def figure_div(figure, anchor: str) -> str:
    """The figure's div, its JSON packed in an attribute for the loader to draw; as tall as the figure will be,
    so the page does not move while figures are drawn."""
    height = figure.layout.height or DEFAULT_HEIGHT
    return (
        f'<div id="plot-{anchor}" class="plot" style="min-height:{int(height)}px" '
        f'data-figure="{pack(figure.to_json())}"></div>'
    )


def table_html(frame: pd.DataFrame) -> str:
    """A plain HTML table, every cell escaped, numbers to three decimals."""
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.3f}", border=0)


def render(title: str, summary: Sequence[str], warnings: Sequence[str], sections: Sequence[Section]) -> str:
    has_figures = any(section.figure_html for section in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>",
    ]
    if has_figures:
        parts.append(
            '<p class="note" id="no-plots" hidden>This browser cannot unpack the interactive plots (it lacks '
            "DecompressionStream); each section links its PNG image instead.</p>"
        )
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
    if has_figures:
        # Inline, never a CDN: the page must open on a machine without internet, and as an MLflow artifact.
        parts.append(f'<script type="application/octet-stream" id="plotly-js">{_packed_plotlyjs()}</script>')
        parts.append(f'<script type="text/javascript">{_LOADER}({json.dumps(CONFIG)});</script>')
    parts.append("</body></html>")
    return "\n".join(parts)
