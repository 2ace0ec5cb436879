"""Pure: the demo's HTML report — tables and inline SVG plots, no JavaScript, no I/O.

``render_report(data)`` returns one self-contained HTML page: calls and service level per interval,
the wait-time distribution, agent states over time, and any tables given. Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

PALETTE = ("#2b6cb0", "#b7791f", "#6b46c1", "#319795", "#d53f8c", "#4a5568", "#2f855a", "#c53030")
#: Series whose colour carries a meaning: answered is green and abandoned red, everywhere.
MEANING: Final = {
    "offered": "#2b6cb0",
    "answered": "#2f855a",
    "abandoned": "#c53030",
    "calls": "#2b6cb0",
    "available": "#2f855a",
    "reserved": "#63b3ed",
    "ringing": "#63b3ed",
    "on_call": "#2b6cb0",
    "wrap_up": "#6b46c1",
    "paused": "#b7791f",
    "not_ready": "#c53030",
    "logged_out": "#a0aec0",
}


def colour(name: str, k: int) -> str:
    """A series' colour: its meaning's, else the palette's ``k``-th."""
    return MEANING.get(name, PALETTE[k % len(PALETTE)])


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
    service_level: Sequence[float | None] = ()  # fraction 0..1 per interval (all queues)
    service_level_target: float | None = None  # one target line for ``service_level``
    # per queue: its service level per interval and its own target (one dashed line each)
    queue_service_levels: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    queue_targets: Mapping[str, float] = field(default_factory=dict)
    wait_times: Sequence[float] = ()  # seconds, inbound callers in queue: until answered or gone
    agent_state_times: Sequence[str] = ()
    agent_states: Mapping[str, Sequence[float]] = field(default_factory=dict)  # state -> counts
    tables: Sequence[Table] = ()
    notes: Sequence[str] = ()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _axis_max(values: Sequence[float]) -> float:
    """A round top for the y axis whose quarters (the grid lines) are round numbers too."""
    top = max([v for v in values if v is not None and math.isfinite(v)] or [1.0])
    if top <= 0:
        return 1.0
    quarter = top / 4
    magnitude = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= quarter:
            return round(float(4 * step * magnitude), 9)
    return float(top)  # pragma: no cover - 10 * magnitude always reaches the quarter


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
                f'fill="{colour(name, k)}"><title>{_e(name)} {_e(label)}: '
                f"{_num(v)}</title></rect>"
            )
    parts.append(_x_labels(labels, left, top_pad + plot_h, group_w))
    legend, extra = _legend([(n, colour(n, k), False) for k, n in enumerate(names)], left, width, height)
    parts.append(legend)
    parts.append("</svg>")
    return _grow("".join(parts), height, extra)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ymax: float | None = None,
    target: float | None = None,
    targets: Mapping[str, float] | None = None,
    percent: bool = False,
    width: int = 760,
    height: int = 240,
) -> str:
    """One line per series; ``target``: one dashed line for all, ``targets``: one per series, in
    its colour."""
    left, bottom, top_pad = 48, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    n = max(len(labels), 1)
    values = [v for s in series.values() for v in s if v is not None]
    top = ymax if ymax is not None else _axis_max(values)
    step = plot_w / n
    parts = [_frame(title, width, height, left, top_pad, plot_w, plot_h, top, percent=percent)]
    names = list(series)
    lines = [("", target, "#999")] if target is not None else []
    lines += [(nm, (targets or {})[nm], colour(nm, j)) for j, nm in enumerate(names) if nm in (targets or {})]
    for name, value, color in lines:
        y = top_pad + plot_h - plot_h * value / top
        shown = _pct(value) if percent else _num(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-dasharray="5 4"><title>{_e((name + " ").lstrip())}target {shown}</title></line>'
        )
    for k, name in enumerate(names):
        pts = [
            f"{left + step * (i + 0.5):.1f},{top_pad + plot_h - plot_h * v / top:.1f}"
            for i, v in enumerate(series[name])
            if v is not None
        ]
        if pts:
            color = colour(name, k)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>'
            )
            for p in pts:
                cx, cy = p.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
    parts.append(_x_labels(labels, left, top_pad + plot_h, step))
    entries = [(name, colour(name, j), False) for j, name in enumerate(names)]
    if target is not None:
        entries.append((f"target {_pct(target) if percent else _num(target)}", "#999", True))
    for j, name in enumerate(names):
        if name in (targets or {}):
            value = (targets or {})[name]
            shown = _pct(value) if percent else _num(value)
            entries.append((f"{name} target {shown}", colour(name, j), True))
    legend, extra = _legend(entries, left, width, height)
    parts.append(legend)
    parts.append("</svg>")
    return _grow("".join(parts), height, extra)


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
        label = f"{v * 100:.0f}%" if percent else _num(v)
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


LEGEND_ROW = 16


def _text_width(text: str) -> float:
    """About how wide ``text`` is at the charts' 11 px sans-serif."""
    return 6.6 * len(text)


def _legend(entries: Sequence[tuple[str, str, bool]], x: float, width: int, height: int) -> tuple[str, int]:
    """The legend under the plot, wrapped onto as many rows as its entries need (name, colour,
    dashed); returns it and the height it adds to the chart."""
    out = []
    cx, row = x, 0
    for name, color, dashed in entries:
        w = 18 + _text_width(name) + 16
        if cx + w > width - 6 and cx > x:
            cx, row = x, row + 1
        y = height + 4 + row * LEGEND_ROW
        mark = (
            f'<line x1="{cx:.0f}" y1="{y - 4}" x2="{cx + 12:.0f}" y2="{y - 4}" stroke="{color}" '
            'stroke-width="2" stroke-dasharray="4 2"/>'
            if dashed
            else f'<rect x="{cx:.0f}" y="{y - 9}" width="12" height="10" fill="{color}"/>'
        )
        out.append(mark + f'<text x="{cx + 17:.0f}" y="{y}">{_e(name)}</text>')
        cx += w
    return "".join(out), (row + 1) * LEGEND_ROW + 6 if entries else 0


def _grow(svg: str, height: int, extra: int) -> str:
    """The chart made ``extra`` pixels taller (for its legend)."""
    if not extra:
        return svg
    new = height + extra
    return svg.replace(f'height="{height}" viewBox="0 0 ', f'height="{new}" viewBox="0 0 ', 1).replace(
        f' {height}" role="img"', f' {new}" role="img"', 1
    )


def _num(v: float) -> str:
    """A number as people read it: whole when large, one decimal when small."""
    if not math.isfinite(v):
        return "-"
    if v == int(v):
        return f"{int(v)}"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _seconds(v: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour)."""
    total = int(round(v))
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


#: Report columns shown as percentages (their values are fractions 0..1) and as durations.
PERCENT_COLUMNS: Final = frozenset({"abandon_rate", "service_level", "occupancy", "fcr", "sl_target"})
HEADINGS: Final = {
    "abandon_rate": "abandoned %",
    "service_level": "service level",
    "asa_seconds": "ASA",
    "aht_seconds": "AHT",
    "longest_wait_seconds": "longest wait",
    "avg_talk_seconds": "talk",
    "avg_hold_seconds": "hold",
    "avg_wrapup_seconds": "wrap-up",
    "short_abandoned": "short aband.",
    "callbacks_requested": "callbacks asked",
    "callbacks_completed": "callbacks done",
    "fcr": "FCR",
    "sl_target": "SL target",
}


def cell(column: str, value: object) -> str:
    """A table cell's text: fractions as rounded percentages, seconds as m:ss, floats rounded."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if column in PERCENT_COLUMNS:
        return _pct(float(value))
    if column.endswith("_seconds"):
        return _seconds(float(value))
    return _num(float(value))


def _table(t: Table) -> str:
    head = "".join(f"<th>{_e(HEADINGS.get(c, c.replace('_', ' ')))}</th>" for c in t.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_e(cell(col, v))}</td>" for col, v in zip(t.columns, row, strict=False))
        + "</tr>"
        for row in t.rows
    )
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
        if data.queue_service_levels:
            charts.append(
                line_chart(
                    "Service level per interval, each queue against its own target",
                    data.interval_labels,
                    dict(data.queue_service_levels),
                    ymax=1.0,
                    targets=data.queue_targets,
                    percent=True,
                )
            )
        else:
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
    charts.append(histogram("Inbound callers' wait in queue, until answered or gone", data.wait_times))
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
        "body{font-family:sans-serif;margin:2em auto;padding:0 1em;color:#222;max-width:900px}"
        "table{border-collapse:collapse;margin:1em 0;width:100%;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 4px;text-align:right}"
        "td{overflow-wrap:anywhere}th{font-size:11px}"
        "th{background:#f4f4f4;font-weight:600}td:first-child,th:first-child{text-align:left}"
        "svg{display:block;margin:1.5em 0;max-width:100%;height:auto}"
        "</style></head><body>"
        f"<h1>{_e(data.title)}</h1><p>{_e(data.subtitle)}</p>"
        + "".join(charts)
        + tables
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</body></html>\n"
    )
