-- Set by POST /runs/{id}/cancel; a consumer running the run terminates it when it sees this.
ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;
