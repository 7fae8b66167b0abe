-- maestro-git mirror schema, version 10: API tokens of `maestro serve`.
--
-- Operational, not derived from git: `maestro rebuild` keeps it. A token is stored only as the
-- sha256 of its secret; `token_id` is the short public handle `maestro token list/revoke` use.
-- A token reads only the owners in `owners` (row-level security, migration 0011).
CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY,
    token_sha256 text NOT NULL UNIQUE,
    owners       text[] NOT NULL CHECK (cardinality(owners) > 0),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_tokens_owner_format CHECK (
        array_to_string(owners, ',') ~ '^[a-z0-9_-]{1,100}(,[a-z0-9_-]{1,100})*$')
);

COMMENT ON TABLE api_tokens IS 'HTTP API tokens (sha256 of the secret only) and the owners each may read.';
