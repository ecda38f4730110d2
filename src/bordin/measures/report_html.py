"""Render a :class:`~bordin.measures.report.Report` as one self-contained HTML page, or PDF.

No scripts, no web fonts, no network: the page is the template
(``data/report.html``, :class:`string.Template`) with inline CSS and inline SVG charts, and it
prints on A4. :func:`write_pdf` renders the same HTML with WeasyPrint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from string import Template
from typing import Any

from bordin.measures.report import Report, Section

INK = "#1f4e79"
REF = "#a15c00"
GRID = "#c9d1da"
WIDTH = 640

#: Turns one of this module's fixed English texts into the reader's language. The default keeps
#: English (the CLI); the web app passes Django's ``gettext`` and marks the texts
#: (:data:`bordin.web.clinic.outcomes.REPORT_TEXTS`). Texts with ``%(name)s`` placeholders are
#: filled after translation.
Translate = Callable[[str], str]


def _english(text: str) -> str:
    return text


def _version() -> str:
    try:
        return version("bordin")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "dev"


def _t(
    x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, fill: str = "#1b1f24"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}">{escape(text)}</text>'
    )


def _svg(height: float, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}">'
        f"{body}</svg>"
    )


class _Axis:
    def __init__(self, lo: float, hi: float, left: float = 150, right: float = WIDTH - 20):
        if hi <= lo:
            hi = lo + 1
        self.lo, self.hi, self.left, self.right = lo, hi, left, right

    def x(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.left + (v - self.lo) / (self.hi - self.lo) * (self.right - self.left)

    def ticks(self, y0: float, y1: float, fmt: str = "{:.1f}", n: int = 5) -> str:
        out = []
        for i in range(n + 1):
            v = self.lo + (self.hi - self.lo) * i / n
            x = self.x(v)
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="{GRID}"/>')
            out.append(_t(x, y1 + 13, fmt.format(v), anchor="middle", size=10))
        return "".join(out)


def _finite(*xs: float) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


def chart_effect(c: dict[str, Any], tr: Translate = _english) -> str:
    vals = _finite(c["d"], c["low"], c["high"], *[r["value"] for r in c["refs"]], 0.0)
    ax = _Axis(min(0.0, min(vals)), max(1.2, max(vals) + 0.1))
    h = 70 + 16 * len(c["refs"])
    body = [ax.ticks(20, h - 25, "{:.2f}")]
    y = 35
    body.append(
        f'<line x1="{ax.x(c["low"]):.1f}" y1="{y}" x2="{ax.x(c["high"]):.1f}" y2="{y}" '
        f'stroke="{INK}" stroke-width="3"/>'
    )
    body.append(f'<circle cx="{ax.x(c["d"]):.1f}" cy="{y}" r="6" fill="{INK}"/>')
    body.append(_t(10, y + 4, tr("this service d = %(d)s") % {"d": f"{c['d']:.2f}"}, fill=INK))
    for i, ref in enumerate(c["refs"]):
        x = ax.x(ref["value"])
        body.append(
            f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{h - 25}" stroke="{REF}" '
            'stroke-dasharray="4 3"/>'
        )
        body.append(
            _t(
                10,
                58 + 16 * i,
                tr("%(label)s benchmark %(value)s")
                % {"label": ref["label"], "value": f"{ref['value']:.2f}"},
                fill=REF,
                size=10,
            )
        )
    return _svg(h, "".join(body), c["title"])


def chart_categories(c: dict[str, Any], tr: Translate = _english) -> str:
    colours = {
        "recovered": "#1f6f3f",
        "improved": "#6aa84f",
        "unchanged": "#b7b7b7",
        "deteriorated": "#b03a2e",
    }
    total = sum(c["counts"].values()) or 1
    x, body = 10.0, []
    for name, k in c["counts"].items():
        w = (WIDTH - 20) * k / total
        body.append(
            f'<rect x="{x:.1f}" y="10" width="{w:.1f}" height="26" fill="{colours[name]}"/>'
        )
        x += w
    x = 10.0
    for name, k in c["counts"].items():
        body.append(f'<rect x="{x:.0f}" y="46" width="10" height="10" fill="{colours[name]}"/>')
        body.append(_t(x + 14, 55, f"{tr(name)} {100 * k / total:.0f}%", size=11))
        x += 150
    return _svg(66, "".join(body), c["title"])


def chart_rates(c: dict[str, Any], tr: Translate = _english) -> str:
    ax = _Axis(0.0, 1.0, left=170)
    h = 40 + 34 * len(c["bars"])
    body = [ax.ticks(10, h - 25, "{:.0%}")]
    for i, b in enumerate(c["bars"]):
        y = 20 + 34 * i
        body.append(
            f'<rect x="{ax.left}" y="{y}" width="{ax.x(b["value"]) - ax.left:.1f}" '
            f'height="18" fill="{INK}" opacity="0.85"/>'
        )
        body.append(
            f'<line x1="{ax.x(b["low"]):.1f}" y1="{y + 9}" x2="{ax.x(b["high"]):.1f}" '
            f'y2="{y + 9}" stroke="#111" stroke-width="2"/>'
        )
        xr = ax.x(b["ref"])
        body.append(
            f'<line x1="{xr:.1f}" y1="{y - 3}" x2="{xr:.1f}" y2="{y + 21}" '
            f'stroke="{REF}" stroke-width="3"/>'
        )
        body.append(_t(10, y + 13, f"{b['label']}", size=11))
    body.append(
        _t(
            ax.left,
            h - 2,
            tr("bar: this service (line: 95% CI) · orange mark: national reference"),
            size=10,
            fill=REF,
        )
    )
    return _svg(h, "".join(body), c["title"])


def chart_caterpillar(c: dict[str, Any], tr: Translate = _english) -> str:
    est = c["estimates"]
    lo = min(e["low"] for e in est)
    hi = max(e["high"] for e in est)
    span = max(abs(lo), abs(hi), 0.5)
    ax = _Axis(-span, span, left=60)
    step = max(2.5, min(12.0, 520 / len(est)))
    h = 40 + step * len(est)
    body = [ax.ticks(10, h - 25, "{:+.1f}")]
    x0 = ax.x(0.0)
    body.append(f'<line x1="{x0:.1f}" y1="10" x2="{x0:.1f}" y2="{h - 25}" stroke="#111"/>')
    for i, e in enumerate(est):
        y = 16 + step * i
        body.append(
            f'<line x1="{ax.x(e["low"]):.1f}" y1="{y:.1f}" x2="{ax.x(e["high"]):.1f}" '
            f'y2="{y:.1f}" stroke="{GRID}" stroke-width="{max(1.0, step / 3):.1f}"/>'
        )
        body.append(
            f'<circle cx="{ax.x(e["estimate"]):.1f}" cy="{y:.1f}" '
            f'r="{max(1.2, step / 3):.1f}" fill="{INK}"/>'
        )
    body.append(_t(10, 20, tr("better"), size=10))
    body.append(_t(10, h - 30, tr("worse"), size=10))
    return _svg(h, "".join(body), c["title"])


def chart_coefficients(c: dict[str, Any], tr: Translate = _english) -> str:
    vals = _finite(*[v for i in c["items"] for v in (i["low"], i["high"])], 0.0)
    span = max(abs(min(vals)), abs(max(vals)), 0.1) * 1.1
    ax = _Axis(-span, span)
    h = 40 + 30 * len(c["items"])
    body = [ax.ticks(10, h - 25, "{:+.2f}")]
    x0 = ax.x(0.0)
    body.append(f'<line x1="{x0:.1f}" y1="10" x2="{x0:.1f}" y2="{h - 25}" stroke="#111"/>')
    for i, item in enumerate(c["items"]):
        y = 25 + 30 * i
        body.append(
            f'<line x1="{ax.x(item["low"]):.1f}" y1="{y}" x2="{ax.x(item["high"]):.1f}" '
            f'y2="{y}" stroke="{INK}" stroke-width="3"/>'
        )
        body.append(f'<circle cx="{ax.x(item["value"]):.1f}" cy="{y}" r="5" fill="{INK}"/>')
        body.append(_t(10, y + 4, item["label"]))
    return _svg(h, "".join(body), c["title"])


def chart_strip(c: dict[str, Any], tr: Translate = _english) -> str:
    ax = _Axis(0.0, 1.0, left=20)
    body = [ax.ticks(10, 40, "{:.0%}")]
    for v in c["values"]:
        body.append(f'<circle cx="{ax.x(v):.1f}" cy="25" r="3" fill="{INK}" opacity="0.5"/>')
    return _svg(60, "".join(body), c["title"])


CHARTS = {
    "effect": chart_effect,
    "categories": chart_categories,
    "rates": chart_rates,
    "caterpillar": chart_caterpillar,
    "coefficients": chart_coefficients,
    "strip": chart_strip,
}


def render_section(s: Section, translate: Translate = _english) -> str:
    """One section as HTML (every value escaped); used by the page and the web app.

    ``translate`` words the fixed texts (table headings, chart labels); the section's own
    title, intro, rows and notes come from :mod:`bordin.measures.report` as written.
    """
    tr = translate
    out = [
        f'<section id="{escape(s.key)}" data-section="{escape(s.key)}">',
        f"<h2>{escape(s.title)}</h2>",
    ]
    if s.intro:
        out.append(f"<p>{escape(s.intro)}</p>")
    for chart in s.charts:
        out.append(
            f"<figure><figcaption>{escape(chart['title'])}</figcaption>"
            f"{CHARTS[chart['kind']](chart, tr)}</figure>"
        )
    if s.rows:
        out.append(
            "<table><thead><tr>"
            + "".join(
                f"<th>{escape(tr(h))}</th>"
                for h in ("What", "Result", "95% CI", "n", "Method", "Source")
            )
            + "</tr></thead><tbody>"
        )
        for r in s.rows:
            out.append(
                f'<tr><td>{escape(r.what)}</td><td class="value">{escape(r.value)}</td>'
                f'<td class="ci">{escape(r.ci)}</td><td class="n">{escape(r.n)}</td>'
                f'<td class="method">{escape(r.method)}</td>'
                f'<td class="source">{escape(r.source)}</td></tr>'
            )
        out.append("</tbody></table>")
    for note in s.notes:
        out.append(f'<p class="note">{escape(note)}</p>')
    out.append("</section>")
    return "\n".join(out)


def render(
    report: Report, *, generated: datetime | None = None, translate: Translate = _english
) -> str:
    """The report as one HTML document (string); ``translate`` as in :func:`render_section`."""
    template = Template(
        resources.files("bordin.measures").joinpath("data/report.html").read_text("utf-8")
    )
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    interim = (
        f'<p class="interim" data-interim="true"><strong>{escape(translate("Interim results."))}'
        "</strong> "
        + escape(
            translate(
                "No course in these data has a recorded ending, so outcome figures include "
                "clients still in treatment."
            )
        )
        + "</p>"
        if report.interim
        else ""
    )
    refs = "".join(
        f'<li id="ref-{i}"><strong>{escape(key)}</strong>: {escape(cite)}</li>'
        for i, (key, cite) in enumerate(report.references(), start=1)
    )
    sources = (
        f'<section id="sources" data-section="sources"><h2>{escape(translate("Sources"))}</h2>'
        f'<ol class="refs">{refs}</ol></section>'
    )
    toc = "".join(
        f'<li><a href="#{escape(s.key)}">{escape(s.title)}</a></li>' for s in report.sections
    )
    return template.substitute(
        title=escape(report.title),
        source=escape(report.source),
        version=escape(_version()),
        generated=when,
        interim=interim,
        toc=toc,
        body="\n".join([*(render_section(s, translate) for s in report.sections), sources]),
    )


def write_pdf_bytes(html: str) -> bytes:
    """Render the HTML with WeasyPrint (no network fetches: the page has no external parts)."""
    from weasyprint import HTML  # type: ignore[import-untyped]

    def no_fetch(url: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"the report must not load {url}")

    pdf: bytes = HTML(string=html, url_fetcher=no_fetch).write_pdf()
    return pdf


def write_pdf(html: str, path: Path) -> None:
    """:func:`write_pdf_bytes` into a file."""
    path.write_bytes(write_pdf_bytes(html))
