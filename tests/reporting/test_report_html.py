"""The demo's HTML report: self-contained, escaped, with its plots."""

from __future__ import annotations

from html.parser import HTMLParser

from callcenter.reporting.html import ReportData, Table, bar_chart, histogram, render_report


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


def test_the_dispositions_section_has_a_table_per_dimension() -> None:
    from callcenter.reporting.dispositions import shares
    from callcenter.reporting.html import ReportData, disposition_tables, render_report

    rows = shares(
        [
            {"dimension": "agent", "name": "1001", "code": "sale", "label": "Sale made", "calls": 2},
            {"dimension": "queue", "name": "sales", "code": "sale", "label": "Sale made", "calls": 2},
            {"dimension": "queue", "name": "sales", "code": "none", "label": "", "calls": 1},
            {"dimension": "queue", "name": "sales", "code": "<b>", "label": "<script>", "calls": 1},
        ]
    )
    tables = disposition_tables(rows)
    assert [t.title for t in tables] == ["Dispositions by queue", "Dispositions by agent"]
    assert [list(r) for r in tables[0].rows] == [
        ["sales", "sale", "Sale made", 2, "50%"],
        ["sales", "<b>", "<script>", 1, "25%"],
        ["sales", "none", "(none given)", 1, "25%"],
    ]
    page = render_report(ReportData(title="t", tables=tables))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert disposition_tables([]) == []
