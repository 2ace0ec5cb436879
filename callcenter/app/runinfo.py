"""Composition root: where a running controller can be reached, for the commands.

The controller of ``callcenter run`` or ``callcenter demo`` writes ``RUN_DIR/controller.json``
(its HTTP API address, its pid and when it started; nothing secret) once it is ready, and removes
it when it stops. ``callcenter agent ...`` reads it when neither ``--api`` nor ``$CALLCENTER_API``
is given, so it finds a controller listening on any port. A file left by a process that no longer
runs (killed outright) is ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

FILE = "controller.json"


def write(run_dir: Path, *, api: str | None, now: float) -> Path:
    """Record this process as the run dir's controller (atomically: write, then rename)."""
    path = Path(run_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "api": api,
        "pid": os.getpid(),
        "started_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def remove(run_dir: Path) -> None:
    """Forget this process as the controller (only if the file is still ours)."""
    path = Path(run_dir) / FILE
    info = read(run_dir)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read(run_dir: Path) -> dict[str, object] | None:
    """The controller's record if its process still runs, else None."""
    try:
        info = json.loads((Path(run_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def api_address(run_dir: Path) -> str | None:
    """The running controller's API address under ``run_dir``, if there is one."""
    info = read(run_dir)
    api = info.get("api") if info is not None else None
    return api if isinstance(api, str) else None
