"""Pure: the one error tree of the product.

Every error the product raises on purpose derives from ``CallcenterError``. Lower-level errors
(OSError, asyncpg's, yaml's) are translated once, at the boundary where they happen, with
``raise ... from exc``. Dispatch on the class and on ``code`` (stable, part of the API), never on
the message text::

    CallcenterError
    ├── ConfigError                    bad YAML, dialplan model or template (file, line, key)
    │   └── ValidationError            several located problems, all reported in one run
    ├── ProtocolError                  a peer broke a wire protocol
    │   ├── AMIProtocolError           bad AMI framing, oversized message, EOF mid-message
    │   └── AGIProtocolError           bad FastAGI header block or reply, EOF mid-reply
    ├── UnsafeValueError               a value bound for Asterisk carries CR/LF or other unsafe text
    ├── DispositionError               a wrap-up code refused by its call's codes (code, field)
    ├── AsteriskError                  Asterisk reachable but the operation did not succeed
    │   ├── AMIConnectionError         cannot connect / login refused / connection lost
    │   │   └── AMILoginError          the credentials were refused
    │   ├── AMIActionError             Response: Error to an action (action, action_id, message)
    │   ├── ActionLostError            a non-idempotent action's fate is unknown after a reconnect;
    │   │                              it is never re-sent, the caller decides
    │   ├── AMITimeoutError            no response in time (also a TimeoutError)
    │   ├── ApplyError                 `callcenter apply`: a reload failed (restored: old files back)
    │   └── AGIError                   a FastAGI command failed or the channel hung up
    │       ├── AGIHangupError         the channel is gone (HANGUP notice or result=-1)
    │       └── AGICommandError        Asterisk refused a command: 510/511/520 (status, command)
    ├── StoreError                     the database side
    │   ├── PostgresNotFoundError      no PostgreSQL server binaries on this machine
    │   ├── ClusterError               the private cluster would not start/stop
    │   ├── MigrationError             a migration failed (version, file); nothing of it remains
    │   ├── SpoolError                 the call-log spool on disk cannot be used (path)
    │   │   ├── SpoolFullError         the spool reached its size limit (limit_bytes)
    │   │   └── SpoolCorruptError      a spool record fails its checksum (path, offset); skipped
    │   └── CallLogTimeoutError        flush/close did not finish in time (also a TimeoutError)
    └── DomainError                    a request the call center refuses (stable ``code``)
        ├── AgentStateError            an agent state change refused (agent_id, state, event, code)
        ├── RoutingError               a routing request refused: unknown call/agent/queue (code)
        ├── InvalidPhoneNumberError    a number that is not a valid E.164 number (raw, reason)
        ├── DialOutRefusedError        the dial-out policy refuses a number (purpose, reason)
        └── CampaignError              a campaign operation refused (campaign, code)
"""

from __future__ import annotations


class CallcenterError(Exception):
    """Root of every error the product raises on purpose."""

    code: str = "callcenter_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(CallcenterError):
    """A configuration problem located by file, line and key (any of which may be unknown)."""

    code = "config_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        code: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = where
        if key:
            prefix = f"{where}: {key}" if where else key
        super().__init__(f"{prefix}: {message}" if prefix else message, code=code)
        self.reason = message


class ValidationError(ConfigError):
    """Several located configuration problems, all found in one pass."""

    code = "validation_error"

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = list(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s):\n{lines}")


class ProtocolError(CallcenterError):
    """The remote peer broke the wire protocol."""

    code = "protocol_error"


class AMIProtocolError(ProtocolError):
    code = "ami_protocol_error"


class AGIProtocolError(ProtocolError):
    code = "agi_protocol_error"


class UnsafeValueError(CallcenterError):
    """A value bound for Asterisk (AMI header, AGI argument, dialplan text) is unsafe."""

    code = "unsafe_value"

    def __init__(self, message: str, *, field: str | None = None, value: str | None = None) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class DispositionError(CallcenterError):
    """A disposition refused by the codes of its call's queue or campaign (``unknown_disposition``,
    ``disposition_required``); ``field`` names the request field at fault."""

    code = "unknown_disposition"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class AsteriskError(CallcenterError):
    code = "asterisk_error"


class AMIConnectionError(AsteriskError):
    code = "ami_connection_error"


class AMILoginError(AMIConnectionError):
    code = "ami_login_error"


class AMIActionError(AsteriskError):
    """Asterisk answered ``Response: Error`` to an action."""

    code = "ami_action_error"

    def __init__(self, message: str, *, action: str, action_id: str | None = None) -> None:
        self.action = action
        self.action_id = action_id
        super().__init__(f"{action} failed: {message}")
        self.reason = message


class ActionLostError(AsteriskError):
    """A non-idempotent action was in flight when the link dropped; it is never re-sent."""

    code = "ami_action_lost"

    def __init__(self, *, action: str, action_id: str) -> None:
        self.action = action
        self.action_id = action_id
        super().__init__(
            f"{action} (ActionID {action_id}) was in flight when the AMI link dropped; "
            "it was not re-sent and its outcome is unknown"
        )


class AMITimeoutError(AsteriskError, TimeoutError):
    code = "ami_timeout"


class ApplyError(AsteriskError):
    """``callcenter apply`` failed to reload Asterisk; ``restored`` tells whether the previous
    configuration files were put back."""

    code = "apply_failed"

    def __init__(self, message: str, *, restored: bool) -> None:
        self.restored = restored
        super().__init__(message)


class AGIError(AsteriskError):
    code = "agi_error"


class AGIHangupError(AGIError):
    code = "agi_hangup"


class AGICommandError(AGIError):
    """Asterisk answered a FastAGI command with a non-200 status (510 unknown, 511 dead channel,
    520 usage)."""

    code = "agi_command_error"

    def __init__(self, message: str, *, command: str, status: int) -> None:
        self.command = command
        self.status = status
        super().__init__(f"{command}: {status} {message}")
        self.reason = message


class StoreError(CallcenterError):
    code = "store_error"


class PostgresNotFoundError(StoreError):
    code = "postgres_not_found"


class ClusterError(StoreError):
    code = "cluster_error"


class MigrationError(StoreError):
    code = "migration_error"

    def __init__(self, message: str, *, version: int | None = None, file: str | None = None) -> None:
        self.version = version
        self.file = file
        super().__init__(message)


class SpoolError(StoreError):
    """The call-log spool directory or a spool file cannot be used."""

    code = "spool_error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class SpoolFullError(SpoolError):
    """The spool reached its size limit; the batch was not made durable."""

    code = "spool_full"

    def __init__(self, message: str, *, path: str | None = None, limit_bytes: int = 0) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(message, path=path)


class SpoolCorruptError(SpoolError):
    """A spool record fails its checksum or framing; it is reported and skipped."""

    code = "spool_corrupt"

    def __init__(self, message: str, *, path: str | None = None, offset: int = 0) -> None:
        self.offset = offset
        super().__init__(message, path=path)


class CallLogTimeoutError(StoreError, TimeoutError):
    """The call-log writer did not get everything into PostgreSQL in the time given."""

    code = "call_log_timeout"


class DomainError(CallcenterError):
    """A request the call center refuses; ``code`` is stable and part of the API."""

    code = "domain_error"


class InvalidPhoneNumberError(DomainError):
    """A phone number that cannot be normalised to a valid E.164 number."""

    code = "invalid_phone_number"

    def __init__(self, message: str, *, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(message)


class CampaignError(DomainError):
    """A campaign operation the dialer refuses (unknown campaign, bad state change, bad settings)."""

    code = "campaign_error"

    def __init__(self, message: str, *, campaign: str | None = None, code: str | None = None) -> None:
        self.campaign = campaign
        super().__init__(message, code=code)


class AgentStateError(DomainError):
    """The agent state machine refuses this event in this state (``code`` says why)."""

    code = "agent_state"

    def __init__(
        self, message: str, *, agent_id: str, state: str, event: str, code: str | None = None
    ) -> None:
        self.agent_id = agent_id
        self.state = state
        self.event = event
        super().__init__(message, code=code)


class RoutingError(DomainError):
    """A routing request refused: unknown call, agent or queue, or a duplicate (``code``)."""

    code = "routing_error"


class DialOutRefusedError(DomainError):
    """The dial-out policy refuses to dial ``number`` for ``purpose`` (transfer, callback,
    campaign); ``reason`` is a stable code of ``callcenter.config.dialout``."""

    code = "dial_out_refused"

    def __init__(self, message: str, *, number: str, purpose: str, reason: str) -> None:
        self.number = number
        self.purpose = purpose
        self.reason = reason
        super().__init__(message)
