-- Tasks: named run templates. Queue, timeout and retry policy are stored resolved (the
-- API fills in its defaults at create/update), so the scheduler needs no API config.
CREATE TABLE tasks (
    name                       text        PRIMARY KEY,
    script_name                text        NOT NULL,
    script_version             integer,              -- NULL: the latest version at run time
    parameters                 jsonb       NOT NULL DEFAULT '{}',
    queue                      text        NOT NULL,
    timeout_seconds            integer     NOT NULL CHECK (timeout_seconds > 0),
    max_attempts               integer     NOT NULL CHECK (max_attempts >= 1),
    retry_backoff_seconds      double precision NOT NULL,
    retry_backoff_max_seconds  double precision NOT NULL,
    env                        jsonb       NOT NULL DEFAULT '{}',
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- Schedules: a task on a cron expression in an IANA timezone. next_fire_at is the next
-- scheduled time not yet fired (NULL: none left, e.g. past end_at); the scheduler takes
-- due rows with FOR UPDATE SKIP LOCKED, so replicas never fire the same row together.
CREATE TABLE schedules (
    id              uuid        PRIMARY KEY,
    task_name       text        NOT NULL REFERENCES tasks (name) ON DELETE RESTRICT,
    cron            text        NOT NULL,
    timezone        text        NOT NULL DEFAULT 'UTC',
    catchup         boolean     NOT NULL DEFAULT false,
    catchup_limit   integer     NOT NULL DEFAULT 100 CHECK (catchup_limit >= 1),
    overlap         text        NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
    start_at        timestamptz,
    end_at          timestamptz,
    paused          boolean     NOT NULL DEFAULT false,
    parameters      jsonb       NOT NULL DEFAULT '{}',   -- override the task's
    next_fire_at    timestamptz,
    last_fired_at   timestamptz,                        -- scheduled time of the last fire
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused AND next_fire_at IS NOT NULL;

-- Runs remember their task and schedule; one run per (schedule, scheduled time).
ALTER TABLE runs ADD COLUMN task_name text;
ALTER TABLE runs ADD COLUMN schedule_id uuid;
ALTER TABLE runs ADD COLUMN scheduled_for timestamptz;
ALTER TABLE runs ADD COLUMN env jsonb NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX runs_one_per_fire ON runs (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL;
CREATE INDEX runs_schedule_active ON runs (schedule_id)
    WHERE schedule_id IS NOT NULL AND status IN ('queued', 'running', 'retrying');
