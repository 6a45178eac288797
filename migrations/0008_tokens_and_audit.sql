-- API tokens: only the SHA-256 of a token is stored (tokens are 256-bit random, so a
-- plain hash is enough); the token itself is shown once, when created.
CREATE TABLE api_tokens (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL UNIQUE,
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_sha256  text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Who changed, triggered or cancelled what: one row per accepted change through the API.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    role       text        NOT NULL,
    action     text        NOT NULL,
    target     text        NOT NULL,
    status     integer     NOT NULL,
    trace_id   text
);
CREATE INDEX audit_log_by_actor ON audit_log (actor, id DESC);
