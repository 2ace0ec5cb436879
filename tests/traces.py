"""The real Asterisk captures of ``tests/fixtures/asterisk-traces`` (copied byte-exact from
``shared/asterisk-traces``), read for the tests: ``trace_streams`` splits an AMI capture into what
Asterisk sent and what the client sent, byte-exact; ``agi_trace`` gives a FastAGI capture's bytes
from Asterisk and the command lines the script sent."""

from __future__ import annotations

import ast
from pathlib import Path

TRACES = Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"


def trace_streams(path: Path) -> tuple[bytes, bytes]:
    """(bytes Asterisk sent, bytes the client sent) of a capture. ``#`` lines are the capture's
    own marks: ``<<<``/``>>>`` open a block of wire lines, or carry a ``b'...'`` literal."""
    received, sent = bytearray(), bytearray()
    target: bytearray | None = None
    lines = path.read_bytes().split(b"\n")
    for number, line in enumerate(lines):
        if line.startswith(b"#"):
            parts = line.split(None, 3)
            target = None
            if len(parts) >= 3 and parts[2] in (b"<<<", b">>>"):
                target = received if parts[2] == b"<<<" else sent
                if len(parts) == 4:
                    literal = ast.literal_eval(parts[3].decode())
                    target += literal if isinstance(literal, bytes) else literal.encode()
                    target = None
            continue
        if target is not None and number < len(lines) - 1:
            target += line + b"\n"
    return bytes(received), bytes(sent)


def agi_trace(path: Path) -> tuple[bytes, list[str]]:
    """(bytes Asterisk sent, command lines the script sent) of a FastAGI capture."""
    received = bytearray()
    commands: list[str] = []
    for line in path.read_text().splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] == "<<<":
            received += ast.literal_eval(parts[3])
        elif len(parts) == 4 and parts[2] == ">>>":
            commands.append(ast.literal_eval(parts[3]))
    return bytes(received), commands
