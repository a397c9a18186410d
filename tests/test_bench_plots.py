"""bench/plots.py (#15): the benchmark tables drawn as SVG -- Mpps by batch size per
implementation, log scale -- parse as XML, put each point where a log scale puts it, and are
linked under their tables in the report, replaced (not added again) on a redraw."""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import plots  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
REPORT = """# Benchmarks

## NFs

| job | batch | nfkit vector | nfkit JIT kernel | dpkt | Scapy | best nfkit / dpkt |
|---|---:|---:|---:|---:|---:|---:|
| l2fwd <&> | 32 | 1.033 | 3.400 | 0.104 | 0.005 | 33x |
| l2fwd <&> | 256 | 5.914 | 21.160 | 0.101 | 0.004 | 210x |
| l2fwd <&> | 1024 | 8.965 | 53.487 | 0.105 | - | 509x |
| NAT64 | 32 | - | 2.517 | 0.037 | 0.002 | 69x |
| NAT64 | 256 | - | 5.785 | 0.040 | 0.002 | 143x |

| stage | batch 32 | batch 256 |
|---|---:|---:|
| empty kernel | 9.9 | 10.2 |

| PMD | l2fwd | burst 32 | burst 256 | burst 256 / C zero-copy |
|---|---|---:|---:|---:|
| net_null | nfkit, JIT kernel | 4.14 | 13.20 | 0.27 |
| net_null | C loop, zero-copy (the limit) | 50.15 | 48.17 | 1.00 |
"""


def test_tables_become_figures_per_job_and_implementation() -> None:
    figs = [f for end, header, rows in plots._tables(REPORT.splitlines())
            for f in plots.figures(header, rows)]
    assert [f.title for f in figs] == ["l2fwd <&>", "NAT64", "l2fwd on net_null"]
    l2, nat, dpdk = figs
    assert list(l2.series) == ["nfkit vector", "nfkit JIT kernel", "dpkt", "Scapy"]
    assert l2.series["Scapy"] == [(32, 0.005), (256, 0.004)]        # "-" is no point
    assert "nfkit vector" not in nat.series                          # a column of "-"
    assert dpdk.series["C loop, zero-copy (the limit)"] == [(32, 50.15), (256, 48.17)]
    assert dpdk.x_label.startswith("burst")


def test_svg_parses_and_uses_log_scales() -> None:
    fig = plots.Figure("t <&> t", series={"a": [(32, 0.01), (256, 1.0), (1024, 100.0)],
                                          "b & c": [(32, 5.0)]})
    root = ET.fromstring(plots.render_svg(fig))
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "t <&> t" in texts and "b & c" in texts
    assert "Mpps, log scale" in texts and "batch size (packets), log scale" in texts
    assert {"0.01", "0.1", "1", "10", "100"} <= set(texts)            # decade ticks
    line = next(root.iter(f"{SVG}polyline"))
    pts = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    (x0, y0), (x1, y1), (x2, y2) = pts
    # log scales: equal ratios, equal distances (x: 8x then 4x; y: 100x and 100x)
    assert math.isclose((x1 - x0) / (x2 - x1), math.log(8) / math.log(4), rel_tol=1e-2)
    assert math.isclose(y0 - y1, y1 - y2, rel_tol=1e-2) and y0 > y1 > y2
    width = float(root.get("width", 0))
    legend = [t for t in root.iter(f"{SVG}text") if t.text == "b & c"][0]
    assert float(legend.get("x", 0)) + 6.5 * len("b & c") <= width


def test_report_links_its_plots_and_a_redraw_replaces_them(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    out.parent.mkdir()
    lines = plots.with_plots(REPORT.splitlines(), str(out))
    svgs = sorted(p.name for p in (tmp_path / "docs" / "bench").iterdir())
    assert svgs == ["l2fwd-on-net-null.svg", "l2fwd.svg", "nat64.svg"]
    for name in svgs:
        ET.parse(tmp_path / "docs" / "bench" / name)
    marked = [ln for ln in lines if plots.PLOT_MARK in ln]
    assert len(marked) == 2 and "](bench/l2fwd.svg)" in marked[0]
    # after the table, a blank line (else Markdown reads the images as a table row)
    i = lines.index(marked[0])
    assert lines[i - 1] == "" and lines[i - 2].startswith("| NAT64 | 256 ")
    assert plots.with_plots(lines, str(out)) == lines
    assert [ln for ln in lines if plots.PLOT_MARK not in ln] != REPORT.splitlines()  # blank added
    stripped = plots.with_plots(lines, str(out))
    assert len(stripped) == len(REPORT.splitlines()) + 4


def test_docs_benchmarks_shows_the_plots() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs"
    text = (docs / "benchmarks.md").read_text()
    links = [ln for ln in text.splitlines() if plots.PLOT_MARK in ln]
    assert links, "docs/benchmarks.md has no plots: python bench/plots.py docs/benchmarks.md"
    for ln in links:
        for name in ln.split("](bench/")[1:]:
            ET.parse(docs / "bench" / name.split(")")[0])
