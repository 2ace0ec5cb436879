"""The demo's HTML report: self-contained, escaped, with its plots."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from callcenter.reporting.html import (
    MEANING,
    ReportData,
    Table,
    bar_chart,
    histogram,
    line_chart,
    render_report,
)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1


def test_report_has_the_four_plots_and_escapes_text() -> None:
    data = ReportData(
        title="Demo <run>",
        subtitle="seed 7",
        interval_labels=["09:00", "09:15", "09:30"],
        offered=[10, 12, 8],
        answered=[9, 10, 8],
        abandoned=[1, 2, 0],
        service_level=[0.8, 0.75, None],
        service_level_target=0.8,
        wait_times=[1.0, 5.0, 22.0, 40.0],
        agent_state_times=["09:00", "09:15"],
        agent_states={"available": [3, 2], "on_call": [5, 6]},
        tables=[Table("Queues", ["queue", "offered"], [["sales & <support>", 30]])],
        notes=["all calls logged"],
    )
    page = render_report(data)
    parser = _Collector()
    parser.feed(page)
    assert parser.tags.count("svg") == 4
    assert parser.scripts == 0
    assert "Demo &lt;run&gt;" in page and "sales &amp; &lt;support&gt;" in page
    assert "<script" not in page


def test_charts_handle_empty_and_zero_data() -> None:
    assert "no data" in histogram("waits", [])
    svg = bar_chart("zero", ["a"], {"x": [0.0]})
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_cells_are_rounded_for_people() -> None:
    from callcenter.reporting.html import cell

    assert cell("service_level", 0.19230769230769232) == "19%"
    assert cell("abandon_rate", 0.0) == "0%"
    assert cell("asa_seconds", 57.97083239999999) == "0:58"
    assert cell("aht_seconds", 3725.2) == "1:02:05"
    assert cell("offered", 7) == "7"
    assert cell("erlangs", 2.345) == "2.3"
    assert cell("erlangs", 12.6) == "13"
    assert cell("occupancy", None) == "-"
    assert cell("queue", "sales") == "sales"


def test_a_wide_report_table_fits_its_page() -> None:
    columns = [f"column_{i}_seconds" for i in range(15)]
    page = render_report(ReportData(title="t", tables=[Table("wide", columns, [[123.456] * 15])]))
    assert "max-width:900px" in page and "width:100%" in page
    assert "123.456" not in page and "2:03" in page
    assert "column 0 seconds" in page  # headings read as words, and wrap


def test_answered_is_green_and_abandoned_red() -> None:
    svg = bar_chart("calls", ["09:00"], {"offered": [3], "answered": [2], "abandoned": [1]})
    fills = re.findall(r'fill="(#[0-9a-f]{6})"><title>(\w+)', svg)
    assert dict((name, colour) for colour, name in fills) == {
        "offered": MEANING["offered"],
        "answered": MEANING["answered"],
        "abandoned": MEANING["abandoned"],
    }
    assert MEANING["answered"] == "#2f855a" and MEANING["abandoned"] == "#c53030"


def test_each_queue_has_its_own_target_line_and_the_legend_fits() -> None:
    queues = {q: [0.9, 0.7, None] for q in ("sales", "billing", "support", "support-es", "general")}
    targets = {"sales": 0.8, "billing": 0.8, "support": 0.7, "support-es": 0.7, "general": 0.8}
    svg = line_chart("SL", ["10:00", "10:15", "10:30"], queues, ymax=1.0, targets=targets, percent=True)
    assert len(re.findall(r"<line [^>]*stroke-dasharray=\"5 4\"", svg)) == 5
    assert "support-es target 70%" in svg and "sales target 80%" in svg
    width = int(re.search(r'width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert height > 240  # the legend took rows of its own below the plot
    for x, y, text in re.findall(r'<text x="(\d+)" y="(\d+)">([^<]+)</text>', svg):
        assert int(y) <= height - 2, text
        assert int(x) + 6.6 * len(text) <= width, text  # no entry runs off the right edge


def test_axis_tops_have_round_quarters() -> None:
    from callcenter.reporting.html import _axis_max

    assert [_axis_max([v]) for v in (25, 24, 7, 10, 130, 0.9)] == [32, 24, 8, 12, 160, 1.2]
    assert _axis_max([]) == 1.2 and _axis_max([0.0]) == 1.0
