-- maestro-git mirror schema, version 15: a set's member names are written once per change.
--
-- Migration 0014's statement-level triggers recompute `persona_sets.member_names` for the
-- sets a statement on persona_set_members touched, and the writer inserted a set's members
-- with one INSERT per member (psycopg's executemany): a set of 50 members was rewritten 50
-- times per commit that changed it, each rewrite recomputing the stored `search_vector` and
-- adding GIN entries and a dead row (10,540 updates of 218 sets over the 1,856 commits of the
-- 10k benchmark's history, the full-history mirror 20-30 % slower than before 0014).
-- Now the writer inserts a set's members in one statement (mirror/apply.py), and the trigger
-- rewrites a set row only when its names actually differ, so a replay or an edit that keeps
-- the names costs no set update at all. Same function name and triggers: only the body
-- changes.

CREATE OR REPLACE FUNCTION maestro_set_member_names() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    touched text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        touched := 'SELECT set_key FROM maestro_new_members';
    ELSIF TG_OP = 'DELETE' THEN
        touched := 'SELECT set_key FROM maestro_old_members';
    ELSE
        touched := 'SELECT set_key FROM maestro_new_members '
                   'UNION SELECT set_key FROM maestro_old_members';
    END IF;
    EXECUTE format('UPDATE %1$I.persona_sets s SET member_names = n.names '
                   'FROM (SELECT k.set_key, coalesce((SELECT string_agg(m.name, '' '' '
                   'ORDER BY m.position) FROM %1$I.persona_set_members m '
                   'WHERE m.set_key = k.set_key), '''') AS names '
                   'FROM (SELECT DISTINCT set_key FROM (%2$s) t) k) n '
                   'WHERE s.key = n.set_key AND s.member_names IS DISTINCT FROM n.names',
                   TG_TABLE_SCHEMA, touched);
    RETURN NULL;
END $$;
