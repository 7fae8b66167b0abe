-- maestro-git mirror schema, version 2: compress the large columns with lz4.
--
-- The mirror's wide values (Markdown bodies, resolved bodies, their tsvectors, set members'
-- JSON) are written once per change and read often. pglz, PostgreSQL's default, spends most
-- of a bulk load trying to compress tsvectors it then stores uncompressed; lz4 compresses
-- them and is several times faster both ways (a 10k-persona first load: 19 s -> 14 s for
-- the personas COPY on a busy 2-core machine). Only new values are affected: no rewrite.
--
-- lz4 exists from PostgreSQL 14 on, when the server was built with it; elsewhere this
-- migration changes nothing (and is still recorded, so it is not retried).
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 140000 AND EXISTS (
            SELECT 1 FROM pg_settings
            WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        -- EXECUTE: older servers would reject the syntax when the block is compiled.
        EXECUTE 'ALTER TABLE personas
            ALTER COLUMN content SET COMPRESSION lz4,
            ALTER COLUMN resolved_content SET COMPRESSION lz4,
            ALTER COLUMN frontmatter SET COMPRESSION lz4,
            ALTER COLUMN metadata SET COMPRESSION lz4,
            ALTER COLUMN search_vector SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE persona_versions
            ALTER COLUMN content SET COMPRESSION lz4,
            ALTER COLUMN frontmatter SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE persona_templates
            ALTER COLUMN content SET COMPRESSION lz4,
            ALTER COLUMN search_vector SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE persona_set_members
            ALTER COLUMN persona_data SET COMPRESSION lz4,
            ALTER COLUMN search_vector SET COMPRESSION lz4';
    END IF;
END
$$;
