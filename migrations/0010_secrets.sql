-- Script secrets, encrypted (ChaCha20-Poly1305; key_id names the key in secrets.keys).
CREATE TABLE secrets (
    name        text        PRIMARY KEY,
    key_id      text        NOT NULL,
    nonce       bytea       NOT NULL,
    ciphertext  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);
-- A task maps environment variables to secret names; its runs keep the mapping.
ALTER TABLE tasks ADD COLUMN secrets jsonb NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN secrets jsonb NOT NULL DEFAULT '{}';
