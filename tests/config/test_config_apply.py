"""``callcenter apply`` over a real TCP AMI link: a small AMI server on loopback answers Login,
Reload and Logoff; a refused reload restores the previous files."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
from pathlib import Path

import pytest

from callcenter.asterisk.ami import Message
from callcenter.commands.apply import _apply
from callcenter.config import model as m
from callcenter.config.render import DEFAULT_TEMPLATES, RELOAD_MODULES, ApplyError
from callcenter.errors import ConfigError
from tests.centers import REPO, example
from tests.fakes import FakeAMIServer, Reply


def tiny_ami(refuse: frozenset[str] = frozenset()) -> FakeAMIServer:
    """Just enough of Asterisk's manager for ``apply``: Login (the example's apply user,
    ``tiny-secret``), Reload (refused for the modules in ``refuse``), Logoff."""
    user = example().asterisk.ami_apply
    assert user is not None
    server = FakeAMIServer(username=user.username, secret="tiny-secret")

    def reload(m: Message) -> Reply:
        if m.get("Module") in refuse:
            return [[("Response", "Error"), ("Message", "No such module")]]
        return [[("Response", "Success"), ("Message", "Module Reloaded")]]

    server.handlers["Reload"] = reload
    return server


def _config(port: int) -> m.Config:
    c = example(env={"CC_AMI_APPLY_SECRET": "tiny-secret"})
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
    manager = (tmp_path / "etc" / "manager.conf").read_text()
    assert "[callcenter-apply]\nsecret = tiny-secret" in manager


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


async def test_apply_without_an_apply_user_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    c = _config(1)
    c = dataclasses.replace(c, asterisk=dataclasses.replace(c.asterisk, ami_apply=None))
    with pytest.raises(ConfigError) as info:
        await _apply(c, _args(tmp_path / "etc"))
    assert info.value.key == "asterisk.ami_apply"
    assert not (tmp_path / "etc").exists()


async def _run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _dialplans_on_port(tmp_path: Path, port: int) -> Path:
    d = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", d)
    center = d / "center.yaml"
    text = center.read_text()
    assert "    port: 5038\n" in text
    center.write_text(text.replace("    port: 5038\n", f"    port: {port}\n", 1))
    return d


async def test_callcenter_apply_as_typed_reloads_with_its_own_user(tmp_path: Path) -> None:
    """``callcenter apply DIR --out OUT`` run as a command (no ``--install-prompts``): it renders,
    logs in as the apply user and reloads; the demo's placeholder secrets need
    ``--allow-demo-secrets``, as for ``validate``."""
    async with tiny_ami() as ami:
        d = _dialplans_on_port(tmp_path, ami.port)
        out = tmp_path / "etc"
        args = (str(d), "--prompts", str(REPO / "ivr_prompts"), "--out", str(out))
        env = {"CC_AMI_APPLY_SECRET": "tiny-secret"}
        rc, _, err = await _run_cli("apply", *args, env=env)
        assert rc == 2
        assert "asterisk.ami_apply.secret: weak secret" in err  # tiny-secret: shorter than 12
        assert not out.exists() and ami.names() == []
        rc, stdout, err = await _run_cli("apply", *args, "--allow-demo-secrets", env=env)
    assert rc == 0, err
    assert (
        f"apply: {len(list(out.glob('*.conf')))} files written to {out}; reloaded {', '.join(RELOAD_MODULES)}"
    ) in stdout.strip().splitlines()
    assert ami.names() == ["Login", *(["Reload"] * len(RELOAD_MODULES)), "Logoff"]
    (login,) = [msg for _, msg in ami.actions if msg.name == "Login"]
    assert login.get("Username") == "callcenter-apply"


async def test_callcenter_render_checks_secrets_as_validate_does(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    args = ("render", str(REPO / "dialplans"), "--out", str(out))
    rc, _, err = await _run_cli(*args, env={})
    assert rc == 2 and "asterisk.ami.secret: weak secret: a placeholder" in err
    assert not out.exists()
    rc, _, err = await _run_cli(*args, "--allow-demo-secrets", env={})
    assert rc == 0, err
    assert (out / "manager.conf").is_file()
