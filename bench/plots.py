"""Plots of the benchmark tables: Mpps by batch size, one line per implementation, both axes
log scale, as hand-written SVG (no plotting library: the numbers are few and the drawing is
simple; an SVG diffs and renders on GitHub).

``python bench/run.py --out docs/benchmarks.md`` calls :func:`with_plots` on its report;
``python bench/plots.py docs/benchmarks.md`` redraws the plots of an existing report (the
figures go to ``docs/bench/``, linked under their tables).  Tables plotted:

- a ``| job | batch | impl 1 | impl 2 | ... |`` table (the NF table): one figure per job;
- a ``| group | impl | burst 32 | burst 256 | ... |`` table (the DPDK table): one figure per
  group (PMD).

Columns whose header holds ``/`` or ``x`` as a ratio (``best nfkit / dpkt``) are not series.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = ["Figure", "figures", "render_svg", "with_plots"]

#: a colour-blind-safe palette (Okabe-Ito), one per series in order
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
PLOT_MARK = "<!-- plot -->"      # marks the lines with_plots added, so a redraw replaces them
_NUM = re.compile(r"^\**([0-9][0-9,]*(?:\.[0-9]+)?)")


@dataclass
class Figure:
    """One plot: ``series`` maps an implementation to its ``(batch, Mpps)`` points."""
    title: str
    x_label: str = "batch size (packets)"
    y_label: str = "Mpps"
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> float | None:
    m = _NUM.match(cell.strip())
    return float(m.group(1).replace(",", "")) if m else None


def _tables(lines: list[str]) -> list[tuple[int, list[str], list[list[str]]]]:
    """Markdown tables: (index of their last line, header cells, rows of cells)."""
    out, i = [], 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1].strip()):
            header, j = _cells(lines[i]), i + 2
            rows = []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            out.append((j - 1, header, rows))
            i = j
        else:
            i += 1
    return out


def _is_series(header: str) -> bool:
    return "/" not in header and not re.search(r"\bx\b|speed|runs", header)


def figures(header: list[str], rows: list[list[str]]) -> list[Figure]:
    """The figures a table gives (none for a table of another shape)."""
    figs: dict[str, Figure] = {}
    bursts = [(k, int(m.group(1))) for k, h in enumerate(header)
              if (m := re.fullmatch(r"(?:batch|burst) (\d+)", h))]
    if len(header) > 2 and header[1] == "batch":
        for row in rows:
            fig = figs.setdefault(row[0], Figure(row[0]))
            batch = _number(row[1])
            for name, cell in zip(header[2:], row[2:]):
                v = _number(cell)
                if batch and v and _is_series(name):
                    fig.series.setdefault(name, []).append((batch, v))
    elif len(bursts) >= 2 and bursts[0][0] >= 2:      # (a table of costs has them at 1)
        for row in rows:
            fig = figs.setdefault(row[0], Figure(f"l2fwd on {row[0]}", "burst (packets)"))
            for k, burst in bursts:
                v = _number(row[k]) if k < len(row) else None
                if v:
                    fig.series.setdefault(row[1], []).append((burst, v))
    return [f for f in figs.values() if f.series]


def _ticks(lo: float, hi: float) -> list[float]:
    """Decade ticks (1, 10, 100 ...) and, within less than two decades, 2 and 5 between."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if b - a <= 2 else (1,)
    return [s * 10.0 ** e for e in range(a, b + 1) for s in steps if lo <= s * 10.0 ** e <= hi]


def _fmt(v: float) -> str:
    return f"{v:g}" if v >= 0.001 else f"{v:.0e}"


def render_svg(fig: Figure, plot_width: int = 400, height: int = 360) -> str:
    """The figure as a standalone SVG document (wider than ``plot_width`` by its legend)."""
    pts = [p for s in fig.series.values() for p in s]
    xs = sorted({x for x, _ in pts})
    ylo = 10.0 ** math.floor(math.log10(min(y for _, y in pts)))
    yhi = 10.0 ** math.ceil(math.log10(max(y for _, y in pts)))
    if yhi <= ylo:
        yhi = ylo * 10
    xlo, xhi = xs[0] / 1.5, xs[-1] * 1.5
    # legend: ~6.5 px per character of 11-pixel sans-serif, the names whole
    left, right, top, bottom = 60, 50 + round(6.5 * max(map(len, fig.series))), 34, 46
    width = left + plot_width + right
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + pw * (math.log(x) - math.log(xlo)) / (math.log(xhi) - math.log(xlo))

    def py(y: float) -> float:
        return top + ph * (1 - (math.log(y) - math.log(ylo)) / (math.log(yhi) - math.log(ylo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
         f"<title>{escape(fig.title)}</title>",
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="20" font-size="13" font-weight="bold">{escape(fig.title)}</text>']
    for t in _ticks(ylo, yhi):
        y = py(t)
        o.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for x in xs:
        o.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + ph}" stroke="#eee"/>')
        o.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle">{x:g}</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    o.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">'
             f"{escape(fig.x_label)}, log scale</text>")
    o.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
             f"{escape(fig.y_label)}, log scale</text>")
    for i, (name, points) in enumerate(fig.series.items()):
        c = COLOURS[i % len(COLOURS)]
        points = sorted(points)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        o.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in points:
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}">'
                     f"<title>{escape(name)}: {y:g} {escape(fig.y_label)} at {x:g}</title></circle>")
        ly = top + 12 + 16 * i
        o.append(f'<line x1="{left + pw + 12}" y1="{ly - 4}" x2="{left + pw + 30}" y2="{ly - 4}" '
                 f'stroke="{c}" stroke-width="2"/>')
        o.append(f'<text x="{left + pw + 34}" y="{ly}">{escape(name)}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]


def with_plots(lines: list[str], out_md: str) -> list[str]:
    """The report ``lines`` with each plotted table followed by its figures, written as SVG
    files into ``bench/`` beside ``out_md`` (lines a previous call added are replaced)."""
    kept: list[str] = []
    for ln in lines:
        if PLOT_MARK in ln:
            if kept and kept[-1] == "":      # the blank line added before it
                kept.pop()
        else:
            kept.append(ln)
    lines = kept
    svg_dir = os.path.join(os.path.dirname(os.path.abspath(out_md)), "bench")
    inserts: dict[int, list[str]] = {}
    for end, header, rows in _tables(lines):
        for fig in figures(header, rows):
            name = f"{_slug(fig.title)}.svg"
            os.makedirs(svg_dir, exist_ok=True)
            with open(os.path.join(svg_dir, name), "w") as f:
                f.write(render_svg(fig))
            inserts.setdefault(end, []).append(f"![{fig.title}](bench/{name})")
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in inserts:     # a blank line ends the table; the images side by side
            out += ["", f"{PLOT_MARK} " + " ".join(inserts[i])]
    return out


def main(argv: list[str]) -> None:
    """``plots.py REPORT.md``: redraw the plots of an existing report in place."""
    if len(argv) != 1:
        sys.exit("usage: python bench/plots.py docs/benchmarks.md")
    with open(argv[0]) as f:
        lines = f.read().splitlines()
    with open(argv[0], "w") as f:
        f.write("\n".join(with_plots(lines, argv[0])) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
