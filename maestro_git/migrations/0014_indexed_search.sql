-- maestro-git mirror schema, version 14: search that the GIN indexes serve, for every caller.
--
-- 1. A persona set's search vector, stored.
-- `--backend postgres` searched a set by its key, name, description and its members' names;
-- the members' part was a string_agg per set per query, which cost most of a search over a
-- mirror of thousands of sets (the `serve` bench's search p99). Now the set row carries its
-- members' names (`member_names`, in file order) and a GIN-indexed generated
-- `search_vector`, as personas, templates and members always had.
--
-- PostgreSQL keeps `member_names` itself: a statement-level trigger on persona_set_members
-- (insert, update, delete; the writer's COPY included) recomputes it for the sets a statement
-- touched, so the writer keeps writing the columns it always wrote and a mirror at version
-- 13 takes this migration in place. The trigger names the tables through its own table's
-- schema (TG_TABLE_SCHEMA), never through the caller's search_path.

ALTER TABLE persona_sets ADD COLUMN member_names text NOT NULL DEFAULT '';

UPDATE persona_sets s
SET member_names = coalesce((SELECT string_agg(m.name, ' ' ORDER BY m.position)
                             FROM persona_set_members m WHERE m.set_key = s.key), '');

ALTER TABLE persona_sets ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', key || ' ' || coalesce(name, '')), 'A')
    || setweight(to_tsvector('english', coalesce(description, '')), 'B')
    || setweight(to_tsvector('english', member_names), 'C')
) STORED;
CREATE INDEX persona_sets_search_idx ON persona_sets USING gin (search_vector);

-- The sets named in a statement's transition table(s) get their members' names again.
CREATE FUNCTION maestro_set_member_names() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('UPDATE %1$I.persona_sets s SET member_names = coalesce('
                       '(SELECT string_agg(m.name, '' '' ORDER BY m.position) '
                       'FROM %1$I.persona_set_members m WHERE m.set_key = s.key), '''') '
                       'WHERE s.key IN (SELECT set_key FROM maestro_new_members)',
                       TG_TABLE_SCHEMA);
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('UPDATE %1$I.persona_sets s SET member_names = coalesce('
                       '(SELECT string_agg(m.name, '' '' ORDER BY m.position) '
                       'FROM %1$I.persona_set_members m WHERE m.set_key = s.key), '''') '
                       'WHERE s.key IN (SELECT set_key FROM maestro_old_members)',
                       TG_TABLE_SCHEMA);
    ELSE
        EXECUTE format('UPDATE %1$I.persona_sets s SET member_names = coalesce('
                       '(SELECT string_agg(m.name, '' '' ORDER BY m.position) '
                       'FROM %1$I.persona_set_members m WHERE m.set_key = s.key), '''') '
                       'WHERE s.key IN (SELECT set_key FROM maestro_new_members '
                       'UNION SELECT set_key FROM maestro_old_members)',
                       TG_TABLE_SCHEMA);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER persona_set_members_names_insert AFTER INSERT ON persona_set_members
    REFERENCING NEW TABLE AS maestro_new_members
    FOR EACH STATEMENT EXECUTE FUNCTION maestro_set_member_names();
CREATE TRIGGER persona_set_members_names_delete AFTER DELETE ON persona_set_members
    REFERENCING OLD TABLE AS maestro_old_members
    FOR EACH STATEMENT EXECUTE FUNCTION maestro_set_member_names();
CREATE TRIGGER persona_set_members_names_update AFTER UPDATE ON persona_set_members
    REFERENCING NEW TABLE AS maestro_new_members OLD TABLE AS maestro_old_members
    FOR EACH STATEMENT EXECUTE FUNCTION maestro_set_member_names();

COMMENT ON COLUMN persona_sets.member_names IS 'Its members'' names in file order (kept by trigger, for search_vector).';

-- 2. Indexed matching under row-level security.
--
-- Under the policies of 0011 PostgreSQL may not use a GIN index for `search_vector @@ q`: the
-- match operator is not LEAKPROOF, so it runs after the policy, on every row of the table
-- (a `--backend postgres` search over 10,000 personas read them all: ~40 ms a query). These
-- functions answer "which visible rows match q" with the index, as the table owner
-- (SECURITY DEFINER, a fixed search_path), applying exactly the policy's own visibility
-- test with the caller's `maestro.owners`; `mirror/fts.py` joins on the rows they return
-- (equality of keys is leakproof, so the planner drives the scan from them) while the
-- policies still filter every row the caller reads. They return keys, never content, and
-- only keys of rows the caller's scope could read anyway.
CREATE FUNCTION maestro_fts_personas(q tsquery) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
    AS $$ SELECT id FROM personas WHERE search_vector @@ q AND maestro_owner_visible(owner) $$;

CREATE FUNCTION maestro_fts_sets(q tsquery) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
    AS $$ SELECT key FROM persona_sets WHERE search_vector @@ q AND maestro_set_visible(metadata) $$;

CREATE FUNCTION maestro_fts_members(q tsquery) RETURNS TABLE (set_key text, name text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
    AS $$ SELECT m.set_key, m.name FROM persona_set_members m
          JOIN persona_sets s ON s.key = m.set_key
          WHERE m.search_vector @@ q AND maestro_set_visible(s.metadata) $$;

REVOKE EXECUTE ON FUNCTION maestro_fts_personas(tsquery), maestro_fts_sets(tsquery),
    maestro_fts_members(tsquery) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION maestro_fts_personas(tsquery), maestro_fts_sets(tsquery),
    maestro_fts_members(tsquery) TO maestro_reader;
