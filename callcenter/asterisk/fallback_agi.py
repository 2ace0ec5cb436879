"""Shell: the process-AGI fallback script, run by Asterisk itself when the controller is away.

The rendered dialplan sends a call to ``cc-fallback`` when FastAGI fails (``AGISTATUS`` FAILURE or
NOTFOUND); there, before the static message / ring group / voicemail, it runs::

    AGI(/opt/callcenter/.venv/bin/python,-m,callcenter.asterisk.fallback_agi,/var/spool/callcenter/fallback.jsonl)

This script, on pyst2's process-AGI ``asterisk.agi.AGI`` (stdin/stdout, no network, so it works
exactly when the controller does not), appends one JSON line per call to the spool file named by
its argument (the dialplan's constant, never anything from the caller) so the restarted controller
can log the calls it never saw and offer callbacks, then sets ``CC_FALLBACK_LOGGED=1``. It never
blocks the call: any failure is reported on stderr (Asterisk's verbose log) and the script exits
0 so the dialplan goes on.

Caller data (caller id, DNID) only goes into the JSON, escaped by ``json.dumps``; nothing from the
caller is sent back to Asterisk (pyst2 quotes arguments without escaping them), used in a path or
given to a shell. Only pyst2's process-AGI class is used: its FastAGI server is a blocking
``SocketServer`` and its manager is thread-based, which the asyncio controller has no use for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

from asterisk.agi import AGI, AGIException

from callcenter.asterisk import names

# The agi_* keys copied into the spool line.
SPOOLED_KEYS = (
    "agi_uniqueid",
    "agi_channel",
    "agi_callerid",
    "agi_calleridname",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_language",
)


def spool_record(env: dict[str, str], now: float) -> str:
    """The JSON line for one call (without its newline)."""
    record: dict[str, Any] = {key.removeprefix("agi_"): env.get(key, "") for key in SPOOLED_KEYS}
    record["at"] = now
    record["reason"] = "controller_unreachable"
    return json.dumps(record, ensure_ascii=True, sort_keys=True)


def append_line(path: str, line: str) -> None:
    """Append ``line`` with one ``write`` on an ``O_APPEND`` descriptor (whole lines, even with
    several calls falling back at once)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
    finally:
        os.close(fd)


def run(argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    agi = AGI(stdin=stdin, stdout=stdout, stderr=stderr)
    if len(argv) != 1:
        stderr.write("fallback_agi: usage: fallback_agi <spool-file>\n")
        return 0
    try:
        append_line(argv[0], spool_record(dict(agi.env), time.time()))
    except OSError as exc:
        stderr.write(f"fallback_agi: cannot write the spool {argv[0]!r}: {exc}\n")
        return 0
    try:
        agi.set_variable(names.VAR_FALLBACK_LOGGED, "1")
    except AGIException as exc:  # the caller hung up already: the line is written, fine
        stderr.write(f"fallback_agi: {exc!r}\n")
    return 0


def main() -> None:
    raise SystemExit(run(sys.argv[1:], sys.stdin, sys.stdout, sys.stderr))


if __name__ == "__main__":
    main()
