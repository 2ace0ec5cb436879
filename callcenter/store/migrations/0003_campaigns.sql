-- 0003: outbound campaigns (issue 11): campaigns, their contacts, do-not-call numbers, attempts.
-- The dialer's rules live in callcenter/dialer.py; the database enforces the ones that must hold even
-- across a crash: an attempt row exists before its Originate is sent (callcenter/dialer_service.py),
-- a contact's attempt numbers are unique and never exceed the campaign's max_attempts.

CREATE TABLE campaigns (
    campaign_id   text PRIMARY KEY CHECK (campaign_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name          text NOT NULL DEFAULT '',
    mode          text NOT NULL DEFAULT 'progressive'
                  CHECK (mode IN ('preview', 'progressive', 'predictive')),
    state         text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused', 'stopped')),
    max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timezone      text NOT NULL DEFAULT 'UTC',
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_contacts (
    campaign_id   text NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    contact_key   text NOT NULL CHECK (length(contact_key) BETWEEN 1 AND 128),
    phone         text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name          text NOT NULL DEFAULT '',
    zones         text[] NOT NULL CHECK (cardinality(zones) >= 1),
    data          jsonb NOT NULL DEFAULT '{}',
    source_line   integer,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending', 'dialing', 'previewing', 'done', 'exhausted', 'dnc', 'no_window')),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at       timestamptz,
    last_outcome  text,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, contact_key)
);
CREATE UNIQUE INDEX campaign_contacts_phone ON campaign_contacts (campaign_id, phone);
CREATE INDEX campaign_contacts_open ON campaign_contacts (campaign_id, next_at)
    WHERE status IN ('pending', 'dialing', 'previewing');

-- Do-not-call numbers: campaign_id '' is the center-wide list, else one campaign's own.
CREATE TABLE dnc (
    campaign_id  text NOT NULL DEFAULT '',
    phone        text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    source       text NOT NULL DEFAULT '',
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, phone)
);
CREATE INDEX dnc_phone ON dnc (phone);

CREATE TABLE campaign_attempts (
    attempt_id    text PRIMARY KEY,
    campaign_id   text NOT NULL,
    contact_key   text NOT NULL,
    phone         text NOT NULL,
    attempt_no    integer NOT NULL CHECK (attempt_no >= 1),
    agent_id      text,
    channel_id    text,
    started_at    timestamptz NOT NULL,
    person_at     timestamptz,        -- AMD heard a person: live answered
    connected_at  timestamptz,        -- an agent was on the line
    ended_at      timestamptz,
    outcome       text CHECK (outcome IN (
                      'connected', 'abandoned', 'machine', 'machine_message', 'busy', 'no_answer',
                      'failed', 'unknown')),
    reason        text,               -- OriginateResponse Reason, AMD status, hangup cause ...
    UNIQUE (campaign_id, contact_key, attempt_no),
    FOREIGN KEY (campaign_id, contact_key) REFERENCES campaign_contacts ON DELETE CASCADE
);
-- The rolling abandonment window: live-answered attempts per campaign by time.
CREATE INDEX campaign_attempts_live ON campaign_attempts (campaign_id, person_at)
    WHERE person_at IS NOT NULL;
-- Attempts in flight (no outcome yet): what a restarted controller finds.
CREATE INDEX campaign_attempts_open ON campaign_attempts (campaign_id) WHERE outcome IS NULL;
