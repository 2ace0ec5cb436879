"""Pure: the version of a validated configuration, a content hash of its typed model.

Two loads of the same YAML (with the same secrets from the environment) give the same version,
whatever the process: mappings keep their order, sets are sorted, secrets enter as a digest of
their value (never the value itself). ``callcenter apply`` prints it, the running controller
reports the version it runs in ``GET /api/status``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from callcenter.config import model as cm

VERSION_LENGTH = 16  # hex digits shown: enough to tell versions apart, short enough to read


def _canonical(value: Any) -> Any:
    if isinstance(value, cm.Secret):
        return {"secret": hashlib.sha256(value.value.encode()).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"@": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = _canonical(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return [[_canonical(k), _canonical(v)] for k, v in value.items()]
    if isinstance(value, frozenset | set):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def config_version(config: cm.Config) -> str:
    """The configuration's version: the first hex digits of a SHA-256 of its canonical form."""
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]
