-- queued_at: when the current attempt last became queued (submit, retry, reclaim,
-- release), so queue wait is measured per attempt, not from the first submit.
-- traceparent: the W3C trace context the run was created under; every message of the
-- run carries it, so a republished message (outbox, retry) stays in the same trace.
ALTER TABLE runs ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
UPDATE runs SET queued_at = submitted_at;
ALTER TABLE runs ADD COLUMN traceparent text;
-- The producer reports each queue's oldest waiting run every few seconds.
CREATE INDEX runs_queued ON runs (queue, queued_at) WHERE status = 'queued';
