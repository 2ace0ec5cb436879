-- 0002: the call log (issue 6). Record types and their merge rules: callcenter/calllog.py.
-- Times are timestamptz; "revision" is the emitter's time of the newest record merged into a row.
-- No foreign keys between these tables: the writer lands each batch in one transaction, but a
-- call's events may reach the database before or after its calls row (replays, restarts).

CREATE TABLE calls (
    call_id         text PRIMARY KEY,
    direction       text CHECK (direction IN ('inbound', 'outbound', 'internal')),
    did             text,
    caller_number   text,
    called_number   text,
    queue           text,
    overflow_queue  text,
    agent_id        text,
    disposition     text CHECK (disposition IN (
                        'answered', 'abandoned_ivr', 'abandoned_queue', 'overflowed',
                        'callback_requested', 'callback_completed', 'voicemail', 'after_hours',
                        'transferred', 'failed')),
    started_at      timestamptz,
    ivr_ended_at    timestamptz,
    queued_at       timestamptz,
    answered_at     timestamptz,
    ended_at        timestamptz,
    talk_seconds    double precision CHECK (talk_seconds >= 0),
    hold_seconds    double precision CHECK (hold_seconds >= 0),
    wrapup_seconds  double precision CHECK (wrapup_seconds >= 0),
    transfers       integer CHECK (transfers >= 0),
    hangup_cause    integer,
    hangup_by       text,
    language        text,
    priority        integer,
    campaign_id     text,
    callback_of     text,
    data            jsonb,
    revision        double precision NOT NULL,
    -- When the same caller called next (kept by the triggers below): first-contact resolution
    -- within N days is then a comparison, not a search, whatever N the report asks for.
    next_call_at    timestamptz
);
-- Reports: per interval / queue / agent over a time range; FCR: the same caller again.
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_queued_at ON calls (queued_at);
CREATE INDEX calls_answered_at ON calls (answered_at) WHERE answered_at IS NOT NULL;
CREATE INDEX calls_caller_started_at ON calls (caller_number, started_at) WHERE caller_number IS NOT NULL;
-- Calls still open (no disposition): what a restarted controller reconciles.
CREATE INDEX calls_open ON calls (started_at) WHERE disposition IS NULL;
-- Callback calls, counted apart from the offered calls.
CREATE INDEX calls_callbacks ON calls (started_at) WHERE callback_of IS NOT NULL;

-- A call's arrival tells the same caller's previous call when it was called again, and learns of a
-- later call already logged (rows may arrive out of order after a spool replay).
CREATE FUNCTION calls_link_next_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.caller_number IS NULL OR NEW.started_at IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE calls SET next_call_at = NEW.started_at
     WHERE caller_number = NEW.caller_number
       AND started_at < NEW.started_at
       AND (next_call_at IS NULL OR next_call_at > NEW.started_at);
    UPDATE calls SET next_call_at = (
               SELECT min(n.started_at) FROM calls n
                WHERE n.caller_number = NEW.caller_number AND n.started_at > NEW.started_at)
     WHERE call_id = NEW.call_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER calls_next_call_insert AFTER INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_link_next_call();
CREATE TRIGGER calls_next_call_update AFTER UPDATE OF caller_number, started_at ON calls
    FOR EACH ROW
    WHEN (OLD.caller_number IS DISTINCT FROM NEW.caller_number OR OLD.started_at IS DISTINCT FROM NEW.started_at)
    EXECUTE FUNCTION calls_link_next_call();

CREATE TABLE call_legs (
    call_id       text NOT NULL,
    leg_id        text NOT NULL,
    kind          text,
    channel       text,
    agent_id      text,
    endpoint      text,
    started_at    timestamptz,
    answered_at   timestamptz,
    ended_at      timestamptz,
    hangup_cause  integer,
    revision      double precision NOT NULL,
    PRIMARY KEY (call_id, leg_id)
);

CREATE TABLE call_events (
    call_id   text NOT NULL,
    seq       bigint NOT NULL,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    queue     text,
    agent_id  text,
    node      text,
    detail    jsonb,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX call_events_at ON call_events (at);
CREATE INDEX call_events_kind_at ON call_events (kind, at);

CREATE TABLE agent_states (
    agent_id  text NOT NULL,
    seq       bigint NOT NULL,
    at        timestamptz NOT NULL,
    state     text NOT NULL,
    reason    text,
    queue     text,
    call_id   text,
    PRIMARY KEY (agent_id, seq)
);
CREATE INDEX agent_states_at ON agent_states (at);

CREATE TABLE recordings (
    recording_id        text PRIMARY KEY,
    call_id             text,
    agent_id            text,
    queue               text,
    path                text,
    started_at          timestamptz,
    ended_at            timestamptz,
    duration_seconds    double precision,
    pci_paused_seconds  double precision,
    deleted_at          timestamptz,
    revision            double precision NOT NULL
);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_live_started_at ON recordings (started_at) WHERE deleted_at IS NULL;

CREATE TABLE monitor_sessions (
    session_id     text PRIMARY KEY,
    supervisor_id  text,
    agent_id       text,
    call_id        text,
    mode           text,
    outcome        text,
    started_at     timestamptz,
    ended_at       timestamptz,
    revision       double precision NOT NULL
);
CREATE INDEX monitor_sessions_started_at ON monitor_sessions (started_at);

-- The caller lookup of the IVR's screen-pop (issue 8): keyed by the E.164 number.
CREATE TABLE customers (
    phone_e164  text PRIMARY KEY CHECK (phone_e164 ~ '^\+[1-9][0-9]{1,14}$'),
    name        text,
    tier        text,
    account     text,
    data        jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
