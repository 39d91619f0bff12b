"""The pieces an HTML report is made of: sections, figures (PNG + SVG files, inline SVG in the
page), interactive plotly figures, tables, and JSON-clean statistics.

Nothing here reaches the network: matplotlib figures are inlined as SVG, plotly's JavaScript is
inlined once in the page head (it ships inside the plotly package), no font or style is fetched.
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

STRATEGY_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd")
RANDOM_COLOR = "#555555"


@dataclass
class Section:
    """One section of the report: its heading, its HTML body, and its statistics for stats.json."""

    id: str
    title: str
    body: str
    stats: dict = field(default_factory=dict)


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def words(*paragraphs: str) -> str:
    """Plain-words paragraphs (already HTML: callers escape user text with ``esc``)."""
    return "".join(f"<p>{p}</p>" for p in paragraphs if p)


def notes(messages: list[str]) -> str:
    """Messages about what could not be computed, shown where the result would be."""
    if not messages:
        return ""
    items = "".join(f"<li>{esc(m)}</li>" for m in messages)
    return f'<div class="note"><ul>{items}</ul></div>'


def table(frame: pd.DataFrame, *, digits: int = 3, caption: str | None = None, limit: int = 400) -> str:
    """A small HTML table (numbers rounded; at most ``limit`` rows shown, the rest said)."""
    if frame is None or frame.empty:
        return ""
    shown = frame.head(limit)
    formatted = shown.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: "-" if v is None or not math.isfinite(v)
                                                      else f"{v:.{digits}f}")
    formatted = formatted.astype(object).where(formatted.notna(), "-")  # a missing value reads "-", never None
    body = '<div class="scroll">' + formatted.to_html(index=False, escape=True, border=0, classes="data") + "</div>"
    more = f"<p class='small'>... {len(frame) - limit} more rows in the tidy files.</p>" if len(frame) > limit else ""
    head = f"<p class='caption'>{esc(caption)}</p>" if caption else ""
    return head + body + more


def clean(value):
    """``value`` as JSON-clean data: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [clean(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return clean(value.to_dict(orient="records"))
    if isinstance(value, pd.Series):
        return clean(value.to_dict())
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def safe_name(text: str) -> str:
    """A file or folder name from user text (config names, cells)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "report"


def strategy_colors(names) -> dict[str, str]:
    """One colour per strategy, the same in every figure; random grey."""
    colors, i = {}, 0
    for name in names:
        if name == "random":
            colors[name] = RANDOM_COLOR
        else:
            colors[name] = STRATEGY_COLORS[i % len(STRATEGY_COLORS)]
            i += 1
    return colors


class Figures:
    """Writes each static figure as ``figures/<name>.png`` and ``.svg``; the page gets inline SVG."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob("*.png"), *folder.glob("*.svg")]:
            old.unlink()  # a figure of an earlier build that this one does not draw is gone
        self.written: list[str] = []

    def save(self, figure, name: str, alt: str) -> str:
        """Save a matplotlib ``Figure``; return its ``<figure>`` HTML (inline SVG)."""
        name = safe_name(name)
        return self._inline(self._write(figure, name), name, alt)

    def save_files(self, figure, name: str, alt: str) -> str:
        """Save a matplotlib ``Figure`` as files only (the page draws the same data interactively);
        return the download links."""
        name = safe_name(name)
        self._write(figure, name)
        return (f'<p class="downloads">{esc(alt)} as static files: <a href="figures/{name}.png" download>PNG</a>, '
                f'<a href="figures/{name}.svg" download>SVG</a></p>')

    def _write(self, figure, name: str) -> str:
        """``figures/<name>.png`` and ``.svg``; the SVG's text."""
        import matplotlib

        with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "path"}):
            figure.savefig(self.folder / f"{name}.png", dpi=150, bbox_inches="tight")
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", bbox_inches="tight")
        svg = buffer.getvalue()
        (self.folder / f"{name}.svg").write_text(svg)
        self.written += [f"{name}.png", f"{name}.svg"]
        return svg

    @staticmethod
    def _inline(svg: str, name: str, alt: str) -> str:
        svg = svg[svg.index("<svg"):]
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{esc(alt)}" ', 1)
        return (f'<figure class="static">{svg}<figcaption>{esc(alt)} '
                f'(<a href="figures/{name}.png">PNG</a>, <a href="figures/{name}.svg">SVG</a>)'
                "</figcaption></figure>")


def plotly_div(figure, title: str) -> str:
    """An interactive plotly figure under its own heading (outside the plot: the toolbar, shown
    on hover at the plot's top right, never covers it); its JavaScript is inlined once in the
    page head. A click on a legend entry hides or shows that strategy in every panel of the page
    (``LEGEND_JS``)."""
    figure.update_layout(title=None)
    div = figure.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                         config={"displaylogo": False, "responsive": True, "displayModeBar": "hover"})
    return f'<div class="panel"><h4>{esc(title)}</h4>{div}</div>'


LEGEND_JS = """
document.addEventListener('DOMContentLoaded', function () {
  var plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  function toggle(group) {
    plots.forEach(function (gd) {
      var hidden = null, idx = [];
      gd.data.forEach(function (t, i) { if (t.legendgroup === group) { idx.push(i);
        if (hidden === null) hidden = t.visible === 'legendonly'; } });
      if (idx.length) Plotly.restyle(gd, {visible: hidden ? true : 'legendonly'}, idx);
    });
  }
  plots.forEach(function (gd) {
    gd.on('plotly_legendclick', function (ev) {
      toggle(ev.data[ev.curveNumber].legendgroup); return false; });
  });
  window.albenchToggleStrategy = toggle;
});
"""


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:0 auto;
padding:1em 1.2em;color:#222;line-height:1.45}
.scroll{max-width:100%;overflow-x:auto}.panel h4{margin:0.4em 0 0 0.3em;font-size:0.95em}
.answer{background:#eef6ee;border-left:4px solid #2ca02c;padding:0.3em 1em;margin:0.6em 0}
.downloads{font-size:0.85em;color:#555}
h1{margin-bottom:0.2em}h2{border-bottom:1px solid #ccc;padding-bottom:0.2em;margin-top:2em}
table.data{border-collapse:collapse;font-size:0.85em;margin:0.6em 0}
table.data th,table.data td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
p,li{overflow-wrap:break-word}
table.data th{background:#f4f4f4}table.data td:first-child,table.data th:first-child{text-align:left}
.note{background:#fff6e0;border-left:4px solid #e0a800;padding:0.3em 1em;margin:0.6em 0;font-size:0.9em}
.incomplete{background:#fde2e2}.small,.caption{font-size:0.85em;color:#555}
figure.static{margin:0.5em 0}figure.static svg{max-width:100%;height:auto}
figcaption{font-size:0.8em;color:#555}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:0.5em}
pre{background:#f7f7f7;padding:0.6em;overflow:auto;font-size:0.8em;max-height:30em}
nav ol{columns:2;font-size:0.9em}details{margin:0.4em 0}pre{white-space:pre-wrap}
"""


def page(title: str, subtitle: str, sections: list[Section], top: str) -> str:
    """The whole self-contained HTML page; the sections numbered once, in their headings (the
    table of contents is an ordered list: its numbers are the same)."""
    toc = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{i}. {esc(s.title)}</h2>{s.body}</section>'
                   for i, s in enumerate(sections, 1))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style><script type=\"text/javascript\">{plotly_js()}</script>"
        f"<script>{LEGEND_JS}</script></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"small\">{subtitle}</p>{top}<nav><ol>{toc}</ol></nav>{body}"
        "</body></html>\n"
    )
