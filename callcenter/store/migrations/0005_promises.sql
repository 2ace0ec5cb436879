-- 0005: a campaign disabled in the config places no call: the attempt insert refuses it as it
-- refuses a campaign that is not running.

ALTER TABLE campaigns ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- A call that ended while no controller watched it (gone from the PBX when a controller
-- started) is closed as such: its end, and so how it ended, was not seen.
ALTER TABLE calls DROP CONSTRAINT calls_disposition_check;
ALTER TABLE calls ADD CONSTRAINT calls_disposition_check CHECK (disposition IN (
    'answered', 'abandoned_ivr', 'abandoned_queue', 'overflowed',
    'callback_requested', 'callback_completed', 'voicemail', 'after_hours',
    'transferred', 'failed', 'ended_unseen'));

-- Callbacks callers asked for (the in-queue offer, an IVR callback node): they outlive a
-- controller restart, keep the caller's place (queued_at) and are done exactly once.
CREATE TABLE callbacks (
    call_id       text PRIMARY KEY,
    queue         text NOT NULL,
    number        text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    priority      integer NOT NULL DEFAULT 0,
    queued_at     timestamptz NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at       timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callbacks_pending ON callbacks (queued_at) WHERE state = 'pending';
