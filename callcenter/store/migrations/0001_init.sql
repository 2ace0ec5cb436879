-- 0001: the foundation. Domain tables arrive in later migrations.
CREATE TABLE controller_runs (
    run_id      bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    hostname    text NOT NULL DEFAULT '',
    version     text NOT NULL DEFAULT ''
);
