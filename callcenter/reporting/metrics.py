"""Pure: a small metrics registry rendered in Prometheus' text exposition format (0.0.4).

Counters and gauges with optional labels. No I/O: the HTTP shell calls ``render()``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str] | None) -> Labels:
    if not labels:
        return ()
    for k in labels:
        if not _LABEL.match(k):
            raise ValueError(f"bad label name {k!r}")
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class Metric:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    values: dict[Labels, float] = field(default_factory=dict)
    collector: Callable[[], Mapping[Labels, float]] | None = None

    def inc(self, amount: float = 1.0, labels: Mapping[str, str] | None = None) -> None:
        if self.kind == "counter" and amount < 0:
            raise ValueError("a counter only goes up")
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.values[_labels(labels)] = float(value)

    def get(self, labels: Mapping[str, str] | None = None) -> float:
        return self.values.get(_labels(labels), 0.0)


class Registry:
    def __init__(self, prefix: str = "callcenter_") -> None:
        self.prefix = prefix
        self._metrics: dict[str, Metric] = {}

    def _add(self, name: str, kind: str, help_text: str) -> Metric:
        full = self.prefix + name
        if not _NAME.match(full):
            raise ValueError(f"bad metric name {full!r}")
        existing = self._metrics.get(full)
        if existing is not None:
            if existing.kind != kind:
                raise ValueError(f"metric {full} already registered as a {existing.kind}")
            return existing
        metric = Metric(full, kind, help_text)
        self._metrics[full] = metric
        return metric

    def counter(self, name: str, help_text: str) -> Metric:
        return self._add(name, "counter", help_text)

    def gauge_fn(self, name: str, help_text: str, fn: Callable[[], Mapping[Labels, float] | float]) -> Metric:
        """A gauge read from ``fn`` at render time (a number, or label tuples -> number)."""
        metric = self._add(name, "gauge", help_text)

        def collect() -> Mapping[Labels, float]:
            value = fn()
            if isinstance(value, Mapping):
                return value
            return {(): float(value)}

        metric.collector = collect
        return metric

    def render(self) -> str:
        out: list[str] = []
        for name in sorted(self._metrics):
            m = self._metrics[name]
            out.append(f"# HELP {name} {_escape(m.help)}")
            out.append(f"# TYPE {name} {m.kind}")
            values = dict(m.values)
            if m.collector is not None:
                values.update(m.collector())
            if not values:
                values = {(): 0.0}
            for labels, value in sorted(values.items()):
                if labels:
                    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    out.append(f"{name}{{{inner}}} {_fmt(value)}")
                else:
                    out.append(f"{name} {_fmt(value)}")
        return "\n".join(out) + "\n"
