-- maestro-git mirror schema, version 3: the GDPR erasure register.
--
-- `maestro gdpr erase` records each erased subject here, and the mirror writes their commit
-- identities as the pseudonym from then on (new commits, `maestro sync`, `maestro rebuild`),
-- until a human rewrites the git history. Like persona_usage it is operational, not derived
-- from git: `maestro rebuild` keeps it. It holds hashes, not the address or the name.
CREATE TABLE gdpr_erasures (
    email_sha256    text PRIMARY KEY,     -- sha256 of the lower-cased, trimmed address
    name_sha256     text,                 -- sha256 of the lower-cased, trimmed name, if given
    pseudonym_name  text NOT NULL,        -- erased-<h>
    pseudonym_email text NOT NULL,        -- erased-<h>@invalid
    erased_at       timestamptz NOT NULL DEFAULT now()
);
