-- 0004: the people who use the HTTP side: users with a role, their API tokens (a digest only), and
-- the audit log of every mutating request, refused or done.

CREATE TABLE users (
    name           text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    queues         text[] NOT NULL DEFAULT '{}',
    agent_id       text CHECK (agent_id ~ '^[0-9]{1,16}$'),
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- an agent acts as its own agent id; a supervisor is scoped to queues
    CHECK (role <> 'agent' OR agent_id IS NOT NULL),
    CHECK (role <> 'supervisor' OR cardinality(queues) >= 1)
);

CREATE TABLE api_tokens (
    digest      text PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    user_name   text NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    who      text NOT NULL,
    role     text NOT NULL DEFAULT '',
    client   text NOT NULL DEFAULT '',
    action   text NOT NULL DEFAULT '',
    method   text NOT NULL,
    path     text NOT NULL,
    target   text NOT NULL DEFAULT '',
    status   integer NOT NULL,
    code     text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
