-- maestro-git mirror schema, version 13: a persona's typed agent settings as columns.
--
-- `model` (the model an agent tool runs the persona on: Claude Code / Copilot `model`) and
-- `tools` (its tool allowlist: `tools`; NULL = the tool's default, '{}' = none) are derived
-- from the row's `frontmatter` JSON by PostgreSQL itself (generated columns), so the writer
-- keeps writing the columns it always wrote and an old mirror (a `public` layout moved by
-- `registry.adopt_legacy`, or any schema at version 12) takes this migration in place.
-- Rows mirrored before version 13 carry no model/tools in their frontmatter JSON: they show
-- NULL until their file changes or `maestro rebuild` re-reads the head.

-- The strings of a JSON array as text[] (NULL for anything else): immutable, so a generated
-- column may use it.
CREATE FUNCTION maestro_json_texts(value jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(value) = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text(value)) END;

ALTER TABLE personas
    ADD COLUMN model text GENERATED ALWAYS AS (frontmatter ->> 'model') STORED,
    ADD COLUMN tools text[] GENERATED ALWAYS AS (maestro_json_texts(frontmatter -> 'tools')) STORED;
CREATE INDEX personas_model_idx ON personas (lower(model));
CREATE INDEX personas_tools_idx ON personas USING gin (tools);

ALTER TABLE persona_versions
    ADD COLUMN model text GENERATED ALWAYS AS (frontmatter ->> 'model') STORED,
    ADD COLUMN tools text[] GENERATED ALWAYS AS (maestro_json_texts(frontmatter -> 'tools')) STORED;

-- The view gains the two columns at its end; its options are restated (CREATE OR REPLACE
-- replaces them), so it keeps reading under the caller's row-level security (0011).
CREATE OR REPLACE VIEW current_personas WITH (security_invoker = true) AS
    SELECT p.id, p.key, p.owner, p.name, p.display_name, p.description, p.version,
           p.parent_key, p.tags, p.active, p.metadata, p.content, p.resolved_content,
           p.content_hash, p.size_bytes, p.commit, p.created_at, p.updated_at,
           coalesce(u.application_count, 0) AS application_count, u.last_applied_at,
           p.model, p.tools
    FROM personas p LEFT JOIN persona_usage u ON u.persona_id = p.id;

COMMENT ON COLUMN personas.model IS 'The model an agent tool runs this persona on (frontmatter model).';
COMMENT ON COLUMN personas.tools IS 'The tool allowlist (frontmatter tools); NULL = the tool''s default.';
