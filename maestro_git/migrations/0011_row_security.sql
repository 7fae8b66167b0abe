-- maestro-git mirror schema, version 11: the owner boundary of the HTTP API, in PostgreSQL.
--
-- The server reads as the role `maestro_reader` (`SET LOCAL ROLE` inside each request's
-- transaction) with the request's owners in `maestro.owners` (`set_config(..., true)`):
-- a comma-separated list of owner folders, or `*` for every owner (`maestro serve --public`).
-- Unset or empty, the reader sees no owned row. Table owners (the daemon, the CLI) are not
-- subject to these policies (ENABLE, not FORCE, ROW LEVEL SECURITY).
--
-- What an owner scope reads:
--   personas, persona_versions, persona_usage   the persona's owner folder (key = owner/name)
--   audit_events of personas                     the owner of `key` or of `old_key`
--   persona_sets, their members and audit events the set's `metadata.owner`; a set without
--                                                one is shared: every scope reads it
--   persona_templates, sync_state                shared (no owner data)
-- The reader is granted exactly these tables and views; a later migration that adds a table
-- the API reads must grant it (and give it a policy when it holds owned rows).

DO $$
BEGIN
    CREATE ROLE maestro_reader NOLOGIN;
EXCEPTION WHEN OTHERS THEN  -- one role per cluster: another database (or a racing one) made it
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'maestro_reader') THEN
        RAISE;
    END IF;
END $$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'maestro_reader', 'MEMBER') THEN
        GRANT maestro_reader TO CURRENT_USER;
    END IF;
EXCEPTION WHEN OTHERS THEN
    IF NOT pg_has_role(current_user, 'maestro_reader', 'MEMBER') THEN
        RAISE;
    END IF;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO maestro_reader', current_schema());
END $$;

CREATE FUNCTION maestro_owner_visible(owner text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(current_setting('maestro.owners', true), '') = '*'
        OR coalesce(owner = ANY (string_to_array(
               nullif(current_setting('maestro.owners', true), ''), ',')), false);

CREATE FUNCTION maestro_set_visible(set_metadata jsonb) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN set_metadata ->> 'owner' IS NULL OR maestro_owner_visible(set_metadata ->> 'owner');

GRANT SELECT ON personas, persona_versions, persona_sets, persona_set_members,
    persona_templates, audit_events, sync_state TO maestro_reader;
GRANT SELECT, INSERT, UPDATE ON persona_usage TO maestro_reader;
GRANT SELECT ON current_personas, latest_versions, set_members TO maestro_reader;

-- Views run with the privileges of their caller, so the policies below apply through them.
ALTER VIEW current_personas SET (security_invoker = true);
ALTER VIEW latest_versions SET (security_invoker = true);
ALTER VIEW set_members SET (security_invoker = true);

ALTER TABLE personas ENABLE ROW LEVEL SECURITY;
CREATE POLICY personas_owner_scope ON personas FOR SELECT TO maestro_reader
    USING (maestro_owner_visible(owner));

ALTER TABLE persona_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY persona_versions_owner_scope ON persona_versions FOR SELECT TO maestro_reader
    USING (maestro_owner_visible(split_part(key, '/', 1)));

ALTER TABLE persona_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY persona_usage_owner_scope ON persona_usage FOR ALL TO maestro_reader
    USING (EXISTS (SELECT FROM personas p WHERE p.id = persona_usage.persona_id))
    WITH CHECK (EXISTS (SELECT FROM personas p WHERE p.id = persona_usage.persona_id));

ALTER TABLE persona_sets ENABLE ROW LEVEL SECURITY;
CREATE POLICY persona_sets_owner_scope ON persona_sets FOR SELECT TO maestro_reader
    USING (maestro_set_visible(metadata));

ALTER TABLE persona_set_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY persona_set_members_owner_scope ON persona_set_members FOR SELECT
    TO maestro_reader
    USING (EXISTS (SELECT FROM persona_sets s WHERE s.key = persona_set_members.set_key));

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_events_owner_scope ON audit_events FOR SELECT TO maestro_reader
    USING (CASE kind
        WHEN 'persona' THEN maestro_owner_visible(split_part(key, '/', 1))
            OR (old_key IS NOT NULL AND maestro_owner_visible(split_part(old_key, '/', 1)))
        WHEN 'persona_set' THEN maestro_owner_visible('*')
            OR EXISTS (SELECT FROM persona_sets s WHERE s.key = audit_events.key)
        ELSE true END);

-- Operational tables the reader must never see.
ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
