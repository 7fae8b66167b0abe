-- maestro-git mirror schema, version 12: the delivery log of signed webhooks.
--
-- Operational, not derived from git: `maestro rebuild` keeps it. The delivery worker of
-- `maestro serve` (mirror/webhooks.py) enqueues one row per (url, mirrored commit) from
-- audit_events after each URL's cursor, then posts due rows, retrying with back-off.
-- The mirror never waits for it: a failing receiver only grows this table.
CREATE TABLE webhook_cursors (
    url           text PRIMARY KEY,
    last_event_id bigint NOT NULL             -- audit_events.id already enqueued for this URL
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    url              text NOT NULL,
    commit           text NOT NULL,
    body             text NOT NULL,           -- the exact JSON bytes signed and sent
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (url, commit)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

ALTER TABLE webhook_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE webhook_deliveries IS 'Signed webhook deliveries: one per URL and mirrored commit, with attempts and outcome.';
