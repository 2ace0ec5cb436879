"""``callcenter apply`` over a real TCP AMI link: a small AMI server on loopback answers Login,
Reload and Logoff; a refused reload restores the previous files."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.commands.apply import _apply
from callcenter.config import model as m
from callcenter.config.load import load_config
from callcenter.config.render import DEFAULT_TEMPLATES, RELOAD_MODULES, ApplyError

REPO = Path(__file__).resolve().parents[2]


class TinyAMI:
    """Just enough of Asterisk's manager: greeting, Login (checks the secret), Reload, Logoff."""

    def __init__(self, secret: str, refuse: frozenset[str] = frozenset()) -> None:
        self.secret = secret
        self.refuse = refuse
        self.actions: list[dict[str, str]] = []
        self.sessions: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        self.writers.add(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                async with asyncio.timeout(10):
                    block = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
                self.actions.append(headers)
                action, aid = headers.get("Action", ""), headers.get("ActionID", "")
                if action == "Login":
                    ok = headers.get("Secret") == self.secret
                    reply = (
                        "Success\r\nMessage: Authentication accepted"
                        if ok
                        else "Error\r\nMessage: Authentication failed"
                    )
                elif action == "Reload" and headers.get("Module") in self.refuse:
                    reply = "Error\r\nMessage: No such module"
                elif action == "Logoff":
                    writer.write(f"Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks\r\n\r\n".encode())
                    await writer.drain()
                    break
                else:
                    reply = "Success\r\nMessage: Module Reloaded"
                writer.write(f"Response: {reply}\r\nActionID: {aid}\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(ami: TinyAMI) -> AsyncIterator[int]:
    server = await asyncio.start_server(ami.handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in ami.writers:  # end every session (their reads fail), then wait for them
            writer.close()
        await asyncio.gather(*ami.sessions, return_exceptions=True)
        await server.wait_closed()


def _config(port: int) -> m.Config:
    c = load_config(REPO / "dialplans", env={"CC_AMI_SECRET": "tiny-secret"})
    ami = dataclasses.replace(c.asterisk.ami, port=port, connect_timeout=2, action_timeout=2)
    return dataclasses.replace(c, asterisk=dataclasses.replace(c.asterisk, ami=ami))


def _args(out: Path) -> argparse.Namespace:
    return argparse.Namespace(out=out, run_dir=str(out.parent), templates=DEFAULT_TEMPLATES)


async def test_apply_reloads_every_module_over_ami(tmp_path: Path) -> None:
    ami = TinyAMI("tiny-secret")
    async with serve(ami) as port:
        result = await _apply(_config(port), _args(tmp_path / "etc"))
    assert result.reloaded == RELOAD_MODULES
    assert [a["Action"] for a in ami.actions] == ["Login", *(["Reload"] * len(RELOAD_MODULES)), "Logoff"]
    assert [a["Module"] for a in ami.actions if a["Action"] == "Reload"] == list(RELOAD_MODULES)
    assert "secret = tiny-secret" in (tmp_path / "etc" / "manager.conf").read_text()


async def test_apply_refused_reload_restores_previous_files(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    out.mkdir()
    (out / "extensions.conf").write_text("; what was there before\n")
    ami = TinyAMI("tiny-secret", refuse=frozenset({"pbx_config.so"}))
    async with serve(ami) as port:
        with pytest.raises(ApplyError) as info:
            await _apply(_config(port), _args(out))
    assert info.value.restored
    assert (out / "extensions.conf").read_text() == "; what was there before\n"
    assert "No such module" in str(info.value)
