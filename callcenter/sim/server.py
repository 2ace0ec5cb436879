"""Shell: :class:`SimulatedPBX`, the simulator in one object (engine + AMI server + FastAGI client
+ simulated people), started in-process by tests, the demo and ``callcenter sim``.

Configuration comes from a directory of rendered Asterisk configuration (``extensions.conf``,
``manager.conf``), or from dialplan text directly. The AMI credentials are the first user of
``manager.conf`` unless given (then they replace its login and keep its write classes); its
``eventfilter`` lines apply to every session. Every user of ``manager.conf`` may log in, and each
is held to its ``write`` classes as Asterisk holds it.
"""

from __future__ import annotations

import configparser
import logging
from pathlib import Path

from callcenter.clock import Clock, RealClock
from callcenter.errors import ConfigError
from callcenter.sim.agi_client import FastAGIClient
from callcenter.sim.ami_server import AMIServer, AMIUser
from callcenter.sim.apps import APPLICATIONS
from callcenter.sim.dialplan import Dialplan, parse
from callcenter.sim.pbx import PBX, Endpoint
from callcenter.sim.people import Scenario
from callcenter.sim.population import Population
from callcenter.sim.sounds import SoundLibrary

log = logging.getLogger(__name__)


def read_manager_conf(path: Path) -> tuple[str | None, str | None, list[str], int | None]:
    """(username, secret, eventfilters, port) from a rendered ``manager.conf``."""
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=(";", "#"), inline_comment_prefixes=(";",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from exc
    # eventfilter may repeat: configparser would keep the last; gather them by hand.
    filters: list[str] = []
    user: str | None = None
    section: str | None = None
    for line in text.splitlines():
        s = line.split(";", 1)[0].strip()
        if s.startswith("[") and "]" in s:
            section = s[1 : s.index("]")]
            if section != "general" and user is None:
                user = section
            continue
        if section == user and s.replace(" ", "").startswith("eventfilter"):
            filters.append(s.split("=", 1)[1].lstrip(">").strip())
    try:
        parser.read_string(
            "\n".join(
                ln for ln in text.splitlines() if not ln.strip().replace(" ", "").startswith("eventfilter")
            )
        )
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse: {exc}", file=str(path)) from exc
    secret = parser.get(user, "secret", fallback=None) if user else None
    port_text = parser.get("general", "port", fallback=None) if parser.has_section("general") else None
    return user, secret, filters, int(port_text) if port_text and port_text.isdigit() else None


def read_manager_users(path: Path) -> dict[str, AMIUser]:
    """Every user of a rendered ``manager.conf``: its secret and write classes."""
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=(";", "#"), inline_comment_prefixes=(";",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = path.read_text()
        parser.read_string("\n".join(ln for ln in text.splitlines() if "eventfilter" not in ln))
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from exc
    users: dict[str, AMIUser] = {}
    for name in parser.sections():
        if name == "general":
            continue
        write = parser.get(name, "write", fallback="")
        users[name] = AMIUser(
            parser.get(name, "secret", fallback=""),
            frozenset(c.strip() for c in write.split(",") if c.strip()),
        )
    return users


class SimulatedPBX:
    """The simulated PBX, ready to ``await start()``; bound ports in ``ami_port`` after start.

    ``config``: a directory holding the rendered ``extensions.conf`` (and ``manager.conf``), or
    ``None`` with ``dialplan_text``. ``agi_host``/``agi_port`` override the host/port of every
    ``agi://`` URL in the dialplan (tests run the controller's FastAGI server on a free port).
    ``scenario``: the simulated people (:class:`callcenter.sim.people.Scenario`), optional.
    """

    def __init__(
        self,
        config: str | Path | None = None,
        *,
        dialplan_text: str | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        ami_host: str = "127.0.0.1",
        ami_port: int = 0,
        agi_host: str | None = None,
        agi_port: int | None = None,
        ami_user: str | None = None,
        ami_secret: str | None = None,
        scenario: Scenario | None = None,
        recordings_dir: str | Path | None = None,
        sounds_dirs: list[str | Path] | None = None,
        endpoints: dict[str, Endpoint] | None = None,
        check_dialplan: bool = True,
    ) -> None:
        self.config_dir = Path(config) if config is not None else None
        self.clock: Clock = clock or RealClock()
        self.seed = seed
        filters: list[str] = []
        user, secret = ami_user, ami_secret
        users: dict[str, AMIUser] = {}
        if self.config_dir is not None:
            ext = self.config_dir / "extensions.conf"
            if dialplan_text is None:
                try:
                    dialplan_text = ext.read_text()
                except OSError as exc:
                    raise ConfigError(f"cannot read: {exc}", file=str(ext)) from exc
            manager = self.config_dir / "manager.conf"
            if manager.is_file():
                m_user, m_secret, filters, _ = read_manager_conf(manager)
                users = read_manager_users(manager)
                if user and user not in users and m_user in users:
                    # credentials given replace the first user's login; its classes stay
                    users[user] = users.pop(m_user)
                user = user or m_user
                secret = secret or m_secret
        if dialplan_text is None:
            raise ConfigError("the simulated PBX needs a config directory or dialplan text")
        self._check = check_dialplan
        self._file = str(self.config_dir / "extensions.conf") if self.config_dir else "extensions.conf"
        dialplan = parse(dialplan_text, file=self._file, check=check_dialplan)
        dirs = [Path(d) for d in (sounds_dirs or [])]
        if self.config_dir is not None:
            dirs += [self.config_dir / "sounds", self.config_dir.parent / "ivr_prompts"]
        self.pbx = PBX(
            dialplan,
            applications=APPLICATIONS,
            clock=self.clock,
            seed=seed,
            sounds=SoundLibrary(dirs),
            recordings_dir=Path(recordings_dir)
            if recordings_dir
            else (self.config_dir or Path(".")) / "recordings",
            endpoints=endpoints,
        )
        self.agi = FastAGIClient(self.pbx, host=agi_host, port=agi_port, seed=seed)
        self.pbx.agi_runner = self.agi.run
        self.ami = AMIServer(
            self.pbx,
            host=ami_host,
            port=ami_port,
            username=user or "callcenter",
            secret=secret or "callcenter",
            eventfilters=filters,
            reload=self.reload,
            write_classes=users[user].write_classes if user in users else None,
            users={name: u for name, u in users.items() if name != user},
        )
        self.scenario = scenario
        self.population: Population | None = None

    @property
    def dialplan(self) -> Dialplan:
        return self.pbx.dialplan

    @property
    def ami_port(self) -> int:
        return self.ami.port

    def reload(self) -> str:
        """Re-read ``extensions.conf`` (the AMI ``dialplan reload``) and ``manager.conf``'s users."""
        if self.config_dir is None:
            return "Dialplan reloaded."
        manager = self.config_dir / "manager.conf"
        if manager.is_file():
            try:
                users = read_manager_users(manager)
            except ConfigError as exc:
                log.error("manager reload failed: %s", exc)
            else:
                main = users.pop(self.ami.username, None)
                if main is not None:
                    self.ami.secret, self.ami.write_classes = main.secret, main.write_classes
                self.ami.users = users
        path = self.config_dir / "extensions.conf"
        try:
            self.pbx.dialplan = parse(path.read_text(), file=str(path), check=self._check)
        except (OSError, ConfigError) as exc:
            log.error("dialplan reload failed: %s", exc)
            return f"Dialplan reload failed: {exc}"
        return "Dialplan reloaded."

    async def start(self) -> None:
        """Serve AMI; let the scenario's people in if one was given (else see ``start_people``)."""
        await self.ami.start()
        if self.scenario is not None:
            self.start_people(self.scenario)

    def start_people(
        self, scenario: Scenario, *, agi_host: str | None = None, agi_port: int | None = None
    ) -> Population:
        """Let ``scenario``'s people in now, optionally pointing the FastAGI client at the
        controller first. Returns the :class:`~callcenter.sim.population.Population` (its
        ``stats`` and ``changed`` event). The one place the simulator's people are built."""
        if agi_host is not None:
            self.agi.host = agi_host
        if agi_port is not None:
            self.agi.port = agi_port
        self.scenario = scenario
        population = Population(self.pbx, scenario, seed=self.seed)
        self.population = population
        population.start()
        return population

    async def close(self) -> None:
        if self.population is not None:
            await self.population.close()
        await self.ami.close()
        await self.pbx.close()

    async def __aenter__(self) -> SimulatedPBX:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
