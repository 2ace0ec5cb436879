"""Pure: the demo's HTML report — tables and inline SVG plots, no JavaScript, no I/O.

``render_report(data)`` returns one self-contained HTML page: calls and service level per interval,
the wait-time distribution, agent states over time, and any tables given. Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PALETTE = ("#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#319795", "#d53f8c", "#4a5568")


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class ReportData:
    title: str
    subtitle: str = ""
    interval_labels: Sequence[str] = ()
    offered: Sequence[float] = ()
    answered: Sequence[float] = ()
    abandoned: Sequence[float] = ()
    service_level: Sequence[float | None] = ()  # fraction 0..1 per interval
    service_level_target: float | None = None
    wait_times: Sequence[float] = ()  # seconds, answered and abandoned callers
    agent_state_times: Sequence[str] = ()
    agent_states: Mapping[str, Sequence[float]] = field(default_factory=dict)  # state -> counts
    tables: Sequence[Table] = ()
    notes: Sequence[str] = ()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _axis_max(values: Sequence[float]) -> float:
    top = max([v for v in values if v is not None and math.isfinite(v)] or [1.0])
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= top:
            return float(step * magnitude)
    return float(top)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    width: int = 760,
    height: int = 260,
    stacked: bool = False,
) -> str:
    """Grouped (or stacked) bars, one group per label."""
    left, bottom, top_pad = 48, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    n = max(len(labels), 1)
    names = list(series)
    if stacked:
        totals = [sum(series[s][i] for s in names if i < len(series[s])) for i in range(n)]
        ymax = _axis_max(totals)
    else:
        ymax = _axis_max([v for s in names for v in series[s]])
    group_w = plot_w / n
    parts = [_frame(title, width, height, left, top_pad, plot_w, plot_h, ymax)]
    for i in range(n):
        x0 = left + i * group_w
        base = 0.0
        for k, name in enumerate(names):
            vals = series[name]
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / ymax
            if stacked:
                y = top_pad + plot_h - plot_h * (base + v) / ymax
                x, w = x0 + group_w * 0.1, group_w * 0.8
                base += v
            else:
                w = group_w * 0.8 / max(len(names), 1)
                x, y = x0 + group_w * 0.1 + k * w, top_pad + plot_h - h
            label = labels[i] if i < len(labels) else i
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w - 1, 0.5):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{_e(name)} {_e(label)}: '
                f"{v:g}</title></rect>"
            )
    parts.append(_x_labels(labels, left, top_pad + plot_h, group_w))
    parts.append(_legend(names, left, 14))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ymax: float | None = None,
    target: float | None = None,
    percent: bool = False,
    width: int = 760,
    height: int = 240,
) -> str:
    left, bottom, top_pad = 48, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    n = max(len(labels), 1)
    values = [v for s in series.values() for v in s if v is not None]
    top = ymax if ymax is not None else _axis_max(values)
    step = plot_w / n
    parts = [_frame(title, width, height, left, top_pad, plot_w, plot_h, top, percent=percent)]
    if target is not None:
        y = top_pad + plot_h - plot_h * target / top
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#999" '
            f'stroke-dasharray="4 3"><title>target {target:g}</title></line>'
        )
    names = list(series)
    for k, name in enumerate(names):
        pts = [
            f"{left + step * (i + 0.5):.1f},{top_pad + plot_h - plot_h * v / top:.1f}"
            for i, v in enumerate(series[name])
            if v is not None
        ]
        if pts:
            color = PALETTE[k % len(PALETTE)]
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>'
            )
            for p in pts:
                cx, cy = p.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
    parts.append(_x_labels(labels, left, top_pad + plot_h, step))
    parts.append(_legend(names, left, 14))
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, values: Sequence[float], *, bins: int = 12, unit: str = "s") -> str:
    if not values:
        return f"<p>{_e(title)}: no data.</p>"
    hi = max(values)
    width = max(hi / bins, 1e-9)
    counts = [0.0] * bins
    for v in values:
        counts[min(int(v / width), bins - 1)] += 1
    labels = [f"{i * width:.0f}-{(i + 1) * width:.0f}{unit}" for i in range(bins)]
    return bar_chart(title, labels, {"calls": counts})


def _frame(
    title: str,
    width: int,
    height: int,
    left: int,
    top_pad: int,
    plot_w: float,
    plot_h: float,
    ymax: float,
    *,
    percent: bool = False,
) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="{top_pad - 14}" font-size="13" font-weight="bold">{_e(title)}</text>',
    ]
    for i in range(5):
        v = ymax * i / 4
        y = top_pad + plot_h - plot_h * i / 4
        label = f"{v * 100:.0f}%" if percent else f"{v:g}"
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{label}</text>'
        )
    out.append(
        f'<line x1="{left}" y1="{top_pad + plot_h:.1f}" x2="{left + plot_w:.1f}" '
        f'y2="{top_pad + plot_h:.1f}" stroke="#333"/>'
    )
    return "".join(out)


def _x_labels(labels: Sequence[str], left: float, y0: float, step: float) -> str:
    every = max(1, math.ceil(len(labels) / 12))
    return "".join(
        f'<text x="{left + step * (i + 0.5):.1f}" y="{y0 + 14:.1f}" text-anchor="middle" '
        f'fill="#333">{_e(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    )


def _legend(names: Sequence[str], x: float, y: float) -> str:
    out = []
    offset = 260.0
    for k, name in enumerate(names):
        cx = x + offset + k * 110
        out.append(
            f'<rect x="{cx:.0f}" y="{y - 9}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
            f'<text x="{cx + 14:.0f}" y="{y}">{_e(name)}</text>'
        )
    return "".join(out)


def _table(t: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    return f"<h2>{_e(t.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(data: ReportData) -> str:
    charts: list[str] = []
    if data.interval_labels:
        charts.append(
            bar_chart(
                "Calls per interval",
                data.interval_labels,
                {"offered": data.offered, "answered": data.answered, "abandoned": data.abandoned},
            )
        )
        charts.append(
            line_chart(
                "Service level per interval",
                data.interval_labels,
                {"service level": data.service_level},
                ymax=1.0,
                target=data.service_level_target,
                percent=True,
            )
        )
    charts.append(histogram("Wait before answer or abandon", data.wait_times))
    if data.agent_state_times and data.agent_states:
        charts.append(
            bar_chart(
                "Agents by state over time",
                data.agent_state_times,
                dict(data.agent_states),
                stacked=True,
            )
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    tables = "".join(_table(t) for t in data.tables)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(data.title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222;max-width:900px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f4f4f4}svg{display:block;margin:1.5em 0}"
        "</style></head><body>"
        f"<h1>{_e(data.title)}</h1><p>{_e(data.subtitle)}</p>"
        + "".join(charts)
        + tables
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</body></html>\n"
    )


# ------------------------------------------------------------------------------------ dispositions
def disposition_tables(rows: Sequence[Mapping[str, object]]) -> list[Table]:
    """The report's dispositions section: one table per dimension (queue, campaign, agent), each
    code's calls and share of its group (rows of ``callcenter.reporting.dispositions.shares``)."""
    titles = {
        "queue": "Dispositions by queue",
        "campaign": "Dispositions by campaign",
        "agent": "Dispositions by agent",
    }
    out: list[Table] = []
    for dimension, title in titles.items():
        mine = [r for r in rows if r.get("dimension") == dimension]
        if not mine:
            continue
        body = [
            [
                str(r.get("name", "")),
                str(r.get("code", "")),
                str(r.get("label") or ("(none given)" if r.get("code") == "none" else "")),
                int(str(r.get("calls", 0))),
                f"{float(str(r.get('share', 0.0))) * 100:.0f}%",
            ]
            for r in mine
        ]
        out.append(Table(title, [dimension, "code", "label", "calls", "share"], body))
    return out
