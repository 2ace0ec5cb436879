-- Dispositions (wrap-up codes), one row per call and agent who handled it. Written through
-- the call-log writer (callcenter.reporting.dispositions.DispositionRecord), merged by revision:
-- a disposition given after a wrap-up timed out replaces the "none" stored then.
CREATE TABLE call_dispositions (
    call_id      text NOT NULL,
    agent_id     text NOT NULL,
    queue        text,
    campaign_id  text,
    code         text,          -- a configured code, or 'none' when the wrap-up ended without one
    label        text,          -- the code's label when it was given
    notes        text,          -- the agent's notes (control characters stripped, capped)
    outcome      text CHECK (outcome IN ('given', 'timed_out', 'logged_out', 'no_wrap_up')),
    given_by     text,          -- the user who gave it ('system' for a missing one)
    at           timestamptz,
    revision     double precision NOT NULL,
    PRIMARY KEY (call_id, agent_id)
);
CREATE INDEX call_dispositions_at ON call_dispositions (at);
