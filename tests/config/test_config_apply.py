"""``callcenter apply`` over a real TCP AMI link: a small AMI server on loopback answers Login,
Reload and Logoff; a refused reload restores the previous files."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from callcenter.asterisk.ami import Message
from callcenter.commands.apply import _apply
from callcenter.config import model as m
from callcenter.config.render import DEFAULT_TEMPLATES, RELOAD_MODULES, ApplyError
from tests.centers import example
from tests.fakes import FakeAMIServer, Reply


def tiny_ami(refuse: frozenset[str] = frozenset()) -> FakeAMIServer:
    """Just enough of Asterisk's manager for ``apply``: Login (the example's user, ``tiny-secret``),
    Reload (refused for the modules in ``refuse``), Logoff."""
    server = FakeAMIServer(username=example().asterisk.ami.username, secret="tiny-secret")

    def reload(m: Message) -> Reply:
        if m.get("Module") in refuse:
            return [[("Response", "Error"), ("Message", "No such module")]]
        return [[("Response", "Success"), ("Message", "Module Reloaded")]]

    server.handlers["Reload"] = reload
    return server


def _config(port: int) -> m.Config:
    c = example(env={"CC_AMI_SECRET": "tiny-secret"})
    ami = dataclasses.replace(c.asterisk.ami, port=port, connect_timeout=2, action_timeout=2)
    return dataclasses.replace(c, asterisk=dataclasses.replace(c.asterisk, ami=ami))


def _args(out: Path) -> argparse.Namespace:
    return argparse.Namespace(out=out, run_dir=str(out.parent), templates=DEFAULT_TEMPLATES)


async def test_apply_reloads_every_module_over_ami(tmp_path: Path) -> None:
    async with tiny_ami() as ami:
        result = await _apply(_config(ami.port), _args(tmp_path / "etc"))
    assert result.reloaded == RELOAD_MODULES
    assert ami.names() == ["Login", *(["Reload"] * len(RELOAD_MODULES)), "Logoff"]
    assert [m.get("Module") for _, m in ami.actions if m.name == "Reload"] == list(RELOAD_MODULES)
    assert "secret = tiny-secret" in (tmp_path / "etc" / "manager.conf").read_text()


async def test_apply_refused_reload_restores_previous_files(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    out.mkdir()
    (out / "extensions.conf").write_text("; what was there before\n")
    async with tiny_ami(refuse=frozenset({"pbx_config.so"})) as ami:
        with pytest.raises(ApplyError) as info:
            await _apply(_config(ami.port), _args(out))
    assert info.value.restored
    assert (out / "extensions.conf").read_text() == "; what was there before\n"
    assert "No such module" in str(info.value)
