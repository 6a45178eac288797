-- Retry policy per run, the time a retrying run is due, and one row per finished attempt.
ALTER TABLE runs ADD COLUMN max_attempts integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1);
ALTER TABLE runs ADD COLUMN retry_backoff_seconds double precision NOT NULL DEFAULT 10;
ALTER TABLE runs ADD COLUMN retry_backoff_max_seconds double precision NOT NULL DEFAULT 600;
ALTER TABLE runs ADD COLUMN retry_at timestamptz;
CREATE INDEX runs_retry_due ON runs (retry_at) WHERE status = 'retrying';

CREATE TABLE run_attempts (
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    status       text        NOT NULL,
    worker       text,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    exit_code    integer,
    error_code   text,
    error        text,
    PRIMARY KEY (run_id, attempt)
);
