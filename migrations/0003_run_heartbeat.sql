-- Consumers refresh heartbeat_at of the runs they execute; a running run whose heartbeat
-- is stale (its consumer died) is put back in the queue with its attempt counted.
ALTER TABLE runs ADD COLUMN heartbeat_at timestamptz;
-- How often a run was taken back from a consumer that stopped heartbeating.
ALTER TABLE runs ADD COLUMN reclaims integer NOT NULL DEFAULT 0;
CREATE INDEX runs_running_heartbeat ON runs (heartbeat_at) WHERE status = 'running';
