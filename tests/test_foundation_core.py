"""The clock, the error tree, the CLI and the test harness itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter import errors
from callcenter.clock import FakeClock, ScaledClock


async def test_fake_clock_wakes_sleepers_in_order_without_real_time() -> None:
    clock = FakeClock(start=1000.0)
    woke: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep(delay)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("b", 2)), asyncio.create_task(sleeper("a", 1))]
    await clock.wait_for_sleepers(2)
    clock.advance(1.5)
    await asyncio.sleep(0)
    assert woke == ["a"]
    clock.advance(1)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b"]
    assert clock.now() == 1002.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_scaled_clock_runs_faster() -> None:
    clock = ScaledClock(60, start=0.0)
    assert clock.now() >= 0.0
    with pytest.raises(ValueError):
        ScaledClock(0)


def test_error_tree_is_rooted_and_located() -> None:
    e = errors.ConfigError(
        "expected an integer, found 'abc'", file="center.yaml", line=12, key="queues.sales.max_wait"
    )
    assert str(e) == "center.yaml:12: queues.sales.max_wait: expected an integer, found 'abc'"
    assert isinstance(e, errors.CallcenterError)
    lost = errors.ActionLostError(action="Originate", action_id="42")
    assert lost.code == "ami_action_lost" and "not re-sent" in str(lost)
    assert issubclass(errors.AMITimeoutError, TimeoutError)
    v = errors.ValidationError([e, errors.ConfigError("x", file="f", line=1)])
    assert len(v.problems) == 2 and "2 problem(s)" in str(v)


def test_cli_help_and_python_dash_m() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "callcenter", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0
    assert "db" in res.stdout


def test_an_unobserved_task_exception_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest(
        "from tests.conftest import pytest_asyncio_loop_factories\n"
        "from tests.conftest import _fail_on_unobserved_loop_exceptions\n"
    )
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaks():
            async def boom():
                raise RuntimeError("nobody awaited me")
            t = asyncio.create_task(boom())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            del t
        """
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*exception(s) reached the event loop unobserved*"])
