-- Consumers announce themselves (the console's fleet page): each live consumer upserts its
-- row every heartbeat and deletes it when it stops; a row not seen for a while is a
-- consumer that died.
CREATE TABLE consumers (
    worker_id     text        PRIMARY KEY,
    queues        text[]      NOT NULL,
    slots         integer     NOT NULL,
    busy          integer     NOT NULL,
    venv_entries  integer     NOT NULL DEFAULT 0,
    venv_bytes    bigint      NOT NULL DEFAULT 0,
    version       text        NOT NULL,
    -- Seconds between its announcements: a row older than a few of them is a dead consumer.
    every_seconds integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);

-- Output of running attempts, flushed by the consumer while the script runs (complete
-- lines, redacted), so it can be followed live. The final, capped output goes to run_logs
-- when the attempt ends, and that statement removes the attempt's chunks.
CREATE TABLE run_log_chunks (
    run_id   uuid    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    seq      integer NOT NULL,
    stream   text    NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    data     text    NOT NULL,
    PRIMARY KEY (run_id, attempt, seq)
);
