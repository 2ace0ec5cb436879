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
