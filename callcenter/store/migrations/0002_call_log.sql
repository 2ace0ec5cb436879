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
DECLARE
    later timestamptz;
BEGIN
    IF NEW.caller_number IS NULL OR NEW.started_at IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE calls SET next_call_at = NEW.started_at
     WHERE call_id = (SELECT p.call_id FROM calls p
                       WHERE p.caller_number = NEW.caller_number AND p.started_at < NEW.started_at
                       ORDER BY p.started_at DESC LIMIT 1)
       AND (next_call_at IS NULL OR next_call_at > NEW.started_at);
    SELECT n.started_at INTO later FROM calls n
     WHERE n.caller_number = NEW.caller_number AND n.started_at > NEW.started_at
     ORDER BY n.started_at LIMIT 1;
    IF later IS NOT NULL THEN
        UPDATE calls SET next_call_at = later WHERE call_id = NEW.call_id;
    END IF;
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
    -- When the agent's next state began (kept by the trigger below; NULL while it lasts).
    ended_at  timestamptz,
    PRIMARY KEY (agent_id, seq)
);
CREATE INDEX agent_states_at ON agent_states (at);
CREATE INDEX agent_states_agent_at ON agent_states (agent_id, at, seq);

-- Each agent state ends when the agent's next one begins: after every insert (one statement: a
-- COPY or a replayed batch), the inserted states and the state just before the earliest of them get
-- their ended_at from the agent's next state. States that arrive out of order are fixed the same way.
CREATE FUNCTION agent_states_link_ends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH touched AS (
        SELECT i.agent_id, min(i.at) AS first_at FROM ins i GROUP BY i.agent_id
    ), starts AS (
        SELECT t.agent_id,
               coalesce((SELECT a.at FROM agent_states a
                          WHERE a.agent_id = t.agent_id AND a.at < t.first_at
                          ORDER BY a.at DESC, a.seq DESC LIMIT 1), t.first_at) AS from_at
        FROM touched t
    ), linked AS (
        SELECT a.agent_id, a.seq, a.ended_at,
               lead(a.at) OVER (PARTITION BY a.agent_id ORDER BY a.at, a.seq) AS next_at
        FROM agent_states a JOIN starts s ON a.agent_id = s.agent_id AND a.at >= s.from_at
    )
    UPDATE agent_states a SET ended_at = l.next_at
      FROM linked l
     WHERE a.agent_id = l.agent_id AND a.seq = l.seq AND a.ended_at IS DISTINCT FROM l.next_at;
    RETURN NULL;
END
$$;
CREATE TRIGGER agent_states_end AFTER INSERT ON agent_states
    REFERENCING NEW TABLE AS ins
    FOR EACH STATEMENT EXECUTE FUNCTION agent_states_link_ends();
CREATE INDEX agent_states_open ON agent_states (at) WHERE ended_at IS NULL;

-- Time in each state per agent and 15-minute slot (UTC-aligned; every time zone's midnight is on a
-- 15-minute boundary, so 15/30/60-minute and daily reports sum whole slots). Kept by the trigger
-- below as states end, so occupancy over a month reads this table, not millions of state rows.
CREATE TABLE agent_state_time (
    bucket    timestamptz NOT NULL,
    agent_id  text NOT NULL,
    state     text NOT NULL,
    seconds   double precision NOT NULL,
    PRIMARY KEY (bucket, agent_id, state)
);

-- The same for the whole center (all agents together): the queue report's occupancy.
CREATE TABLE center_state_time (
    bucket    timestamptz NOT NULL,
    state     text NOT NULL,
    seconds   double precision NOT NULL,
    PRIMARY KEY (bucket, state)
);

-- As states end (or an end moves, when a state arrives late), their time goes into the slots.
CREATE FUNCTION agent_states_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changes AS (
        SELECT agent_id, state, at AS t0, ended_at AS t1, -1.0::float8 AS sign
          FROM old_rows WHERE ended_at IS NOT NULL
        UNION ALL
        SELECT agent_id, state, at, ended_at, 1.0::float8 FROM new_rows WHERE ended_at IS NOT NULL
    ), parts AS (
        SELECT b AS bucket, c.agent_id, c.state,
               c.sign * date_part('epoch', least(c.t1, b + interval '15 minutes') - greatest(c.t0, b)) AS secs
        FROM changes c
        CROSS JOIN LATERAL generate_series(
            date_bin('15 minutes', c.t0, timestamptz '2000-01-01 00:00:00+00'), c.t1, interval '15 minutes') AS b
        WHERE c.t1 > c.t0 AND least(c.t1, b + interval '15 minutes') > greatest(c.t0, b)
    ), per_agent AS (
        INSERT INTO agent_state_time (bucket, agent_id, state, seconds)
        SELECT bucket, agent_id, state, sum(secs) FROM parts GROUP BY 1, 2, 3
        ON CONFLICT (bucket, agent_id, state)
        DO UPDATE SET seconds = agent_state_time.seconds + EXCLUDED.seconds
    )
    INSERT INTO center_state_time (bucket, state, seconds)
    SELECT bucket, state, sum(secs) FROM parts GROUP BY 1, 2
    ON CONFLICT (bucket, state) DO UPDATE SET seconds = center_state_time.seconds + EXCLUDED.seconds;
    RETURN NULL;
END
$$;
CREATE TRIGGER agent_states_account AFTER UPDATE ON agent_states
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_states_account();

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
