"""Server-side SVG charts: no JavaScript, no CDN, each with a text alternative.

A chart is plain geometry over values that :mod:`bordin.web.clinic.analysis` got from
:mod:`bordin.measures`; nothing here computes a score or a signal. Every string that reaches
the SVG goes through :func:`django.utils.html.format_html`, which escapes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 40, 16, 30, 40


@dataclass(frozen=True)
class Marker:
    session: int
    value: float
    label: str  # short text drawn next to the marker
    description: str  # full sentence for the tooltip and the text alternative
    css: str  # rupture, repair, gain, loss


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]
    css: str  # client, therapist, outcome


@dataclass
class Chart:
    """An SVG chart with everything a screen reader needs to read it without the picture."""

    slug: str
    title: str
    summary: str
    svg: SafeString
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _n(value: float) -> str:
    return f"{value:.1f}"


def _join(parts: Iterable[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((p,) for p in parts))


class _Frame:
    def __init__(self, n_sessions: int, lo: float, hi: float) -> None:
        self.n = max(n_sessions, 2)
        self.lo, self.hi = lo, hi

    def x(self, session: int) -> float:
        return LEFT + (session - 1) * (WIDTH - LEFT - RIGHT) / (self.n - 1)

    def y(self, value: float) -> float:
        span = (self.hi - self.lo) or 1.0
        return TOP + (self.hi - value) * (HEIGHT - TOP - BOTTOM) / span

    def axes(self, ticks: Sequence[float], y_label: str) -> SafeString:
        parts = []
        for t in ticks:
            y = self.y(t)
            parts.append(
                format_html(
                    '<line class="gridline" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                    '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                    LEFT,
                    _n(y),
                    WIDTH - RIGHT,
                    _n(y),
                    LEFT - 6,
                    _n(y + 4),
                    _fmt(t),
                )
            )
        step = max(1, round(self.n / 12))
        for s in range(1, self.n + 1, step):
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(self.x(s)),
                    HEIGHT - BOTTOM + 16,
                    s,
                )
            )
        parts.append(
            format_html(
                '<text class="axis-label" x="{}" y="{}" text-anchor="middle">{}</text>'
                '<text class="axis-label" x="12" y="{}" text-anchor="middle" '
                'transform="rotate(-90 12 {})">{}</text>',
                _n((LEFT + WIDTH - RIGHT) / 2),
                HEIGHT - 6,
                gettext("Session"),
                _n((TOP + HEIGHT - BOTTOM) / 2),
                _n((TOP + HEIGHT - BOTTOM) / 2),
                y_label,
            )
        )
        return _join(parts)

    def line(self, line: Line) -> SafeString:
        points = [(k + 1, v) for k, v in enumerate(line.values) if v is not None]
        if not points:
            return SafeString("")
        path = " ".join(f"{self.x(s):.1f},{self.y(v):.1f}" for s, v in points)
        dots = _join(
            format_html(
                '<circle class="dot {}" cx="{}" cy="{}" r="4"><title>{}</title></circle>',
                line.css,
                _n(self.x(s)),
                _n(self.y(v)),
                gettext("%(line)s, session %(session)s: %(value)s")
                % {"line": line.name, "session": s, "value": _fmt(v)},
            )
            for s, v in points
        )
        return format_html(
            '<polyline class="series {}" points="{}" fill="none"/>{}', line.css, path, dots
        )

    def band(self, edges: Sequence[tuple[int, float, float]], name: str) -> SafeString:
        if len(edges) < 2:
            return SafeString("")
        top = [f"{self.x(s):.1f},{self.y(a):.1f}" for s, a, _ in edges]
        bottom = [f"{self.x(s):.1f},{self.y(b):.1f}" for s, _, b in reversed(edges)]
        expected = " ".join(top)
        return format_html(
            '<polygon class="band" points="{}"><title>{}</title></polygon>'
            '<polyline class="expected" points="{}" fill="none"/>',
            " ".join(top + bottom),
            name,
            expected,
        )

    def marker(self, m: Marker) -> SafeString:
        x, y = self.x(m.session), self.y(m.value)
        # Labels near the left or right edge grow inwards so that they are not cut off.
        if x > WIDTH - RIGHT - 40:
            anchor, label_x = "end", x + 7
        elif x < LEFT + 40:
            anchor, label_x = "start", x - 7
        else:
            anchor, label_x = "middle", x
        return format_html(
            '<g class="marker {}"><path d="M{},{} l7,-12 h-14 z"/>'
            '<text x="{}" y="{}" text-anchor="{}">{}</text><title>{}</title></g>',
            m.css,
            _n(x),
            _n(y - 6),
            _n(label_x),
            _n(max(y - 22, 12)),
            anchor,
            m.label,
            m.description,
        )


def _svg(slug: str, title: str, desc: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>'
        '<desc id="{}-desc">{}</desc>{}</svg>',
        WIDTH,
        HEIGHT,
        slug,
        slug,
        slug,
        title,
        slug,
        desc,
        body,
    )


def line_chart(
    *,
    slug: str,
    title: str,
    summary: str,
    lines: Sequence[Line],
    lo: float,
    hi: float,
    ticks: Sequence[float],
    y_label: str,
    markers: Sequence[Marker] = (),
    band: Sequence[tuple[int, float, float]] = (),
    band_name: str = "",
) -> Chart:
    """Lines over sessions with optional markers and a shaded band; plus its data table."""
    n = max([len(line.values) for line in lines] + [s for s, _, _ in band] + [1])
    frame = _Frame(n, lo, hi)
    body = _join(
        [
            frame.axes(ticks, y_label),
            frame.band(band, band_name),
            *(frame.line(line) for line in lines),
            *(frame.marker(m) for m in markers),
            _legend(lines, bool(band), band_name),
        ]
    )
    columns = [gettext("Session"), *(line.name for line in lines)]
    band_at = {s: (a, b) for s, a, b in band}
    if band:
        columns += [gettext("Expected"), gettext("Edge of expected range")]
    rows = []
    for k in range(n):
        values = [line.values[k] if k < len(line.values) else None for line in lines]
        if all(v is None for v in values) and (k + 1) not in band_at:
            continue
        row = [str(k + 1), *(_fmt(v) for v in values)]
        if band:
            a, b = band_at.get(k + 1, (None, None))
            row += [_fmt(a), _fmt(b)]
        rows.append(row)
    notes = [m.description for m in markers]
    return Chart(
        slug=slug,
        title=title,
        summary=summary,
        svg=_svg(slug, title, summary, body),
        columns=columns,
        rows=rows,
        notes=notes,
    )


def _legend(lines: Sequence[Line], has_band: bool, band_name: str) -> SafeString:
    parts = []
    x = LEFT
    for line in lines:
        parts.append(
            format_html(
                '<g class="legend"><line class="series {}" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text x="{}" y="{}">{}</text></g>',
                line.css,
                x,
                TOP - 6,
                x + 18,
                TOP - 6,
                x + 22,
                TOP - 2,
                line.name,
            )
        )
        x += 34 + 8 * len(line.name)  # room for the name at the legend's font size
    if has_band:
        parts.append(
            format_html(
                '<g class="legend"><rect class="band" x="{}" y="{}" width="18" height="8"/>'
                '<text x="{}" y="{}">{}</text></g>',
                x,
                TOP - 10,
                x + 22,
                TOP - 2,
                band_name,
            )
        )
    return _join(parts)
