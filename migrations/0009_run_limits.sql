-- Resource limits (rlimits) a task sets for its runs; a run keeps the ones it was made
-- with. '{}' means the consumer's defaults.
ALTER TABLE tasks ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';
