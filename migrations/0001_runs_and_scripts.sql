-- Scripts: immutable versions. A version is identified by (name, version); registering the
-- same content + requirements again finds the existing version through `fingerprint`.
CREATE TABLE scripts (
    name          text        NOT NULL,
    version       integer     NOT NULL CHECK (version >= 1),
    language      text        NOT NULL CHECK (language IN ('python', 'shell')),
    content       text        NOT NULL,
    requirements  text[]      NOT NULL DEFAULT '{}',
    sha256        text        NOT NULL,   -- of content alone
    fingerprint   text        NOT NULL,   -- of content + requirements
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    UNIQUE (name, fingerprint)
);

-- Runs: one row per submitted run; every status change is a guarded UPDATE in
-- common/src/run_state.rs.
CREATE TABLE runs (
    id               uuid        PRIMARY KEY,           -- UUIDv7: time-ordered, used as keyset cursor
    script_name      text        NOT NULL,
    script_version   integer     NOT NULL,
    parameters       jsonb       NOT NULL DEFAULT '{}',
    queue            text        NOT NULL,
    status           text        NOT NULL CHECK (status IN
                         ('queued', 'running', 'succeeded', 'failed', 'timed_out',
                          'cancelled', 'retrying', 'dead')),
    attempt          integer     NOT NULL DEFAULT 1,
    triggered_by     text        NOT NULL CHECK (triggered_by IN ('api', 'schedule', 'retry', 'cli')),
    idempotency_key  text        UNIQUE,
    timeout_seconds  integer     NOT NULL CHECK (timeout_seconds > 0),
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,                       -- NULL: still in the outbox
    started_at       timestamptz,
    finished_at      timestamptz,
    worker           text,
    exit_code        integer,
    error_code       text,
    error            text,
    result           jsonb,
    FOREIGN KEY (script_name, script_version) REFERENCES scripts (name, version)
);

CREATE INDEX runs_outbox ON runs (submitted_at) WHERE published_at IS NULL;
CREATE INDEX runs_by_status ON runs (status, id DESC);
CREATE INDEX runs_by_script ON runs (script_name, id DESC);

-- Captured output, one row per attempt, each stream capped (tail kept) by the consumer.
CREATE TABLE run_logs (
    run_id            uuid    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    stdout            text    NOT NULL DEFAULT '',
    stderr            text    NOT NULL DEFAULT '',
    stdout_truncated  boolean NOT NULL DEFAULT false,
    stderr_truncated  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, attempt)
);
