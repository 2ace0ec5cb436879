"""Shared helper: every benchmark reports through ``emit``."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def emit(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """Print one JSON line and write ``bench/results/<name>.json``.

    ``ratio`` is value over baseline, oriented so that higher is better (the caller passes
    rates, not durations)."""
    ratio = (value / baseline) if baseline else None
    record: dict[str, Any] = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 3),
        **extra,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False)
    (RESULTS / f"{name}.json").write_text(line + "\n")
    print(line, flush=True)
    return record
