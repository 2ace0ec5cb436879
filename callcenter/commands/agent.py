"""Composition root: ``callcenter agent login|logout|pause|resume|status`` against the running
controller's HTTP API (``callcenter.acd.http.register_routes``).

The API address is ``--api`` or ``$CALLCENTER_API``, else that of the controller running under the
run dir (``callcenter run`` and ``callcenter demo`` write it to ``RUN_DIR/controller.json``), else
``http://127.0.0.1:8080``; only
loopback or the operator's own controller is ever contacted, every request is bounded by
``--timeout``. Requests carry the bearer token of ``--token`` or ``$CALLCENTER_TOKEN`` (from
``callcenter users token NAME``). The controller answers with the agent's new state, or a JSON
error whose ``code`` is stable (``unknown_agent``, ``already_logged_in``, ``unknown_pause_reason``,
``locked_out``, ``unauthenticated``, ``forbidden`` ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from callcenter.app import runinfo
from callcenter.errors import CallcenterError, DomainError

DEFAULT_API = "http://127.0.0.1:8080"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="log agents in and out, pause and resume them (running controller)")
    p.add_argument(
        "--api",
        default=os.environ.get("CALLCENTER_API"),
        help="controller API URL (default: the controller running under --run-dir, else " + DEFAULT_API + ")",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the controller")
    p.add_argument(
        "--token",
        default=os.environ.get("CALLCENTER_TOKEN"),
        help="API bearer token (default $CALLCENTER_TOKEN; `callcenter users token NAME` makes one)",
    )
    asub = p.add_subparsers(dest="agent_command", required=True)
    login = asub.add_parser("login", help="log an agent in (optionally already paused)")
    login.add_argument("agent_id")
    login.add_argument("--paused", metavar="REASON", help="log in paused with this reason code")
    login.set_defaults(func=cmd_agent, verb="login")
    logout = asub.add_parser("logout", help="log an agent out (after its call, if on one)")
    logout.add_argument("agent_id")
    logout.set_defaults(func=cmd_agent, verb="logout")
    pause = asub.add_parser("pause", help="pause an agent with a reason code (break, lunch, ...)")
    pause.add_argument("agent_id")
    pause.add_argument("reason")
    pause.set_defaults(func=cmd_agent, verb="pause")
    resume = asub.add_parser("resume", help="make a paused or not-ready agent available")
    resume.add_argument("agent_id")
    resume.set_defaults(func=cmd_agent, verb="resume")
    status = asub.add_parser("status", help="every agent's state and the waiting calls")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.set_defaults(func=cmd_status)


def _request(
    api: str, method: str, path: str, body: dict[str, Any] | None, timeout: float, token: str | None
) -> Any:
    url = api.rstrip("/") + path
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CallcenterError(f"the API address must be http(s): {api}", code="bad_api_url")
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read() or b"{}").get("error", {})
        except ValueError:
            err = {}
        code = err.get("code") if isinstance(err, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        if code == "unauthenticated" and not token:
            message = (
                f"the controller at {api} needs an API token (Authorization: Bearer): --token or "
                "CALLCENTER_TOKEN (`callcenter users token NAME` makes one; the demo prints one)"
            )
        raise DomainError(message or f"controller answered {exc.code}", code=code or "api_error") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CallcenterError(f"cannot reach the controller at {api}: {exc}", code="api_unreachable") from exc


def api_of(args: argparse.Namespace) -> str:
    """``--api``/``$CALLCENTER_API``, the run dir's running controller, or the default."""
    return str(args.api or runinfo.api_address(Path(args.run_dir)) or DEFAULT_API)


def cmd_agent(args: argparse.Namespace) -> int:
    agent = urllib.parse.quote(args.agent_id, safe="")
    body: dict[str, Any] = {}
    if args.verb == "login" and args.paused:
        body["paused_reason"] = args.paused
    if args.verb == "pause":
        body["reason"] = args.reason
    state = _request(api_of(args), "POST", f"/api/agents/{agent}/{args.verb}", body, args.timeout, args.token)
    reason = f" ({state.get('reason')})" if state.get("reason") else ""
    print(f"agent {state.get('agent_id')}: {state.get('status')}{reason}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    snap = _request(api_of(args), "GET", "/api/agents", None, args.timeout, args.token)
    if args.format == "json":
        json.dump(snap, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    print(f"{'agent':<8} {'status':<11} {'reason':<14} call")
    for agent_id, a in sorted(snap.get("agents", {}).items()):
        print(f"{agent_id:<8} {a.get('status', ''):<11} {a.get('reason') or '':<14} {a.get('call_id') or ''}")
    waiting = snap.get("waiting", {})
    if waiting:
        print("waiting: " + ", ".join(f"{q} {n}" for q, n in sorted(waiting.items())))
    return 0
