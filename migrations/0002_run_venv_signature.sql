-- The venv (requirement-set signature) a Python run used; NULL when it needed none.
ALTER TABLE runs ADD COLUMN venv_signature text;
