"""Pure: every Asterisk name the product uses, in one place.

Dialplan contexts, channel variables, AGI script names and AMI action/event names. The Jinja2
templates in ``asterisk-conf/`` receive this module's ``TEMPLATE_NAMES`` so that the rendered
dialplan and the controller can never disagree on a name. Add names here; never spell one inline.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- dialplan contexts
CTX_INBOUND: Final = "cc-inbound"  # DIDs land here: Answer, then FastAGI ivr
CTX_HOLD: Final = "cc-hold"  # a caller waiting for an agent: music on hold until bridged
CTX_ANNOUNCE: Final = "cc-announce"  # position / expected-wait announcement, then back to hold
CTX_CALLBACK_OFFER: Final = "cc-callback-offer"  # a waiting caller hears the callback offer
CTX_AGENT_LEG: Final = "cc-agent-leg"  # the originated agent leg: Bridge() the caller on answer
CTX_HELD: Final = "cc-held"  # a connected caller the agent put on hold: its queue's music
CTX_HELD_AGENT: Final = "cc-held-agent"  # the agent's leg while its caller is held: silence
CTX_AGENT_PHONES: Final = "cc-agents"  # what agents' phones dial: feature codes, internal calls
CTX_FEATURES: Final = "cc-features"  # feature codes handed to FastAGI (login, pause, spy...)
CTX_SPY: Final = "cc-spy"  # supervisor monitoring: ChanSpy with listen/whisper/barge options
CTX_OUTBOUND: Final = "cc-outbound"  # dialer legs: AMD, then to the agent or a message
# Dialer legs are Local/<E.164>@cc-dial-<trunk>/n: the dial-out policy checked again, then Dial().
CAMPAIGN_DIAL_PREFIX: Final = "cc-dial-"  # + the trunk id: one context per campaign trunk
CAMPAIGN_DIAL_TEMPLATE: Final = "Local/{number}@" + CAMPAIGN_DIAL_PREFIX + "{trunk}/n"
CTX_FALLBACK: Final = "cc-fallback"  # the controller is unreachable: message, ring group, voicemail
CTX_VOICEMAIL: Final = "cc-voicemail"  # leave a message in a queue's mailbox
CTX_TRANSFER: Final = "cc-transfer"  # blind transfer to an outside number
CTX_ATXFER: Final = "cc-atxfer"  # where AMI Atxfer "dials" ATXFER_EXTEN: on to cc-transfer
# Atxfer queues its Exten as DTMF on the agent's leg, so it must be DTMF digits (not "s"); the
# target itself travels in VAR_TRANSFER_TARGET. CTX_ATXFER has no other extension: read at once.
ATXFER_EXTEN: Final = "0"
CTX_ENDPOINTS: Final = "cc-endpoints"  # dial an agent's endpoint (Local channel target)

# ---------------------------------------------------------------- AGI scripts (agi://host/<name>)
AGI_IVR: Final = "ivr"
AGI_FEATURE: Final = "feature"
AGI_SPY: Final = "spy"
AGI_OUTBOUND: Final = "outbound"
AGI_CALLBACK: Final = "callback"  # the in-queue callback offer (the caller's key)

# ---------------------------------------------------------------- channel variables
VAR_CALL_ID: Final = "CC_CALL_ID"  # the controller's id of the call (uuid-like, safe chars)
VAR_CALLER_CHANNEL: Final = "CC_CALLER"  # the caller's channel name, for Bridge()
VAR_AGENT_ID: Final = "CC_AGENT_ID"
VAR_QUEUE: Final = "CC_QUEUE"
VAR_SKILLS: Final = "CC_SKILLS"
VAR_PRIORITY: Final = "CC_PRIORITY"
VAR_LANGUAGE: Final = "CC_LANGUAGE"
VAR_CUSTOMER: Final = "CC_CUSTOMER"  # caller data for the agent's screen-pop
VAR_MOH_CLASS: Final = "CC_MOH"
VAR_PROMPT: Final = "CC_PROMPT"  # what cc-announce plays
VAR_SPY_TARGET: Final = "CC_SPY_TARGET"
VAR_SPY_OPTIONS: Final = "CC_SPY_OPTIONS"
VAR_CAMPAIGN: Final = "CC_CAMPAIGN"
VAR_ATTEMPT_ID: Final = "CC_ATTEMPT_ID"
VAR_AMD_MESSAGE: Final = "CC_AMD_MESSAGE"
VAR_RECORDING_FILE: Final = "CC_RECORDING"
VAR_TRANSFER_TARGET: Final = "CC_TRANSFER_TARGET"
VAR_AGISTATUS: Final = "AGISTATUS"  # set by Asterisk: SUCCESS, FAILURE, NOTFOUND, HANGUP
VAR_FALLBACK_LOGGED: Final = "CC_FALLBACK_LOGGED"  # set by fallback_agi once the call is spooled
VAR_MAILBOX: Final = "CC_MAILBOX"  # set by the IVR: after the AGI, the call goes to cc-voicemail
VAR_AMD: Final = "CC_AMD"  # dialer legs: "0" skips answering-machine detection
VAR_AMDSTATUS: Final = "AMDSTATUS"  # set by AMD(): HUMAN, MACHINE, NOTSURE, HANGUP
VAR_DIALSTATUS: Final = "DIALSTATUS"  # set by Dial()
VAR_BRIDGERESULT: Final = "BRIDGERESULT"  # set by Bridge(): SUCCESS, FAILURE, NONEXISTENT, LOOP
VAR_BRIDGE_TRIES: Final = "CC_BRIDGE_TRIES"  # cc-agent-leg: Bridge() attempts that failed
VAR_POSITION: Final = "CC_POSITION"  # cc-announce: the caller's place in line (1 = next)
VAR_EWT: Final = "CC_EWT"  # cc-announce: expected wait in whole seconds ("" when unknown)

# ---------------------------------------------------------------- channel states
AST_STATE_UP: Final = 6  # CHANNEL STATUS result (and ChannelState) of an answered channel

# ---------------------------------------------------------------- AMI actions
ACTION_LOGIN: Final = "Login"
ACTION_LOGOFF: Final = "Logoff"
ACTION_PING: Final = "Ping"
ACTION_ORIGINATE: Final = "Originate"
ACTION_REDIRECT: Final = "Redirect"
ACTION_HANGUP: Final = "Hangup"
ACTION_BRIDGE: Final = "Bridge"
ACTION_SETVAR: Final = "Setvar"
ACTION_GETVAR: Final = "Getvar"
ACTION_PLAYDTMF: Final = "PlayDTMF"
ACTION_MIXMONITOR_MUTE: Final = "MixMonitorMute"
ACTION_STOP_MIXMONITOR: Final = "StopMixMonitor"
ACTION_CORE_SHOW_CHANNELS: Final = "CoreShowChannels"
ACTION_STATUS: Final = "Status"
ACTION_COMMAND: Final = "Command"
ACTION_ATXFER: Final = "Atxfer"  # attended transfer started on an agent's channel
ACTION_RELOAD: Final = "Reload"  # with Module: reloads one module's configuration

# How Asterisk answers an action on a channel that has already hung up (``Response: Error``;
# Hangup/Setvar/Getvar say the first, Redirect the second followed by the name). AMI gives no code.
CHANNEL_GONE_MESSAGES: Final = ("No such channel", "Channel does not exist")

# Actions that change the world: never re-sent after a reconnect (their fate is unknown).
NON_IDEMPOTENT_ACTIONS: Final = frozenset(
    {
        ACTION_ORIGINATE,
        ACTION_REDIRECT,
        ACTION_HANGUP,
        ACTION_BRIDGE,
        ACTION_MIXMONITOR_MUTE,
        ACTION_STOP_MIXMONITOR,
        ACTION_PLAYDTMF,
        ACTION_SETVAR,
        ACTION_COMMAND,
        ACTION_ATXFER,
    }
)

TEMPLATE_NAMES: Final = {
    name: value for name, value in globals().items() if name.isupper() and isinstance(value, str)
}
