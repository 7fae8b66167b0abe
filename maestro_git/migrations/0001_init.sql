-- maestro-git mirror schema, version 1. Never edit a released migration: add 0002_….sql.
--
-- Git is the truth; every table here except persona_usage is derived from it and can be
-- rebuilt (`maestro rebuild`). persona_usage holds operational counters git cannot hold.

-- An immutable helper so tags can take part in a generated tsvector column.
CREATE FUNCTION maestro_tags_text(tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(array_to_string(tags, ' '), '');

-- Current state of every agent persona at the last mirrored commit (valid files only).
CREATE TABLE personas (
    id               uuid PRIMARY KEY,          -- frontmatter id (stable across renames)
    key              text NOT NULL,             -- owner/name
    owner            text NOT NULL,
    name             text NOT NULL,
    path             text NOT NULL,
    display_name     text,
    description      text,
    content          text NOT NULL,             -- the Markdown body (system instruction)
    resolved_content text NOT NULL,             -- body composed with its `extends` chain
    version          text NOT NULL DEFAULT '1.0.0',
    parent_key       text,                      -- frontmatter `extends`
    parent_id        uuid REFERENCES personas (id) ON DELETE SET NULL ON UPDATE CASCADE
                         DEFERRABLE INITIALLY DEFERRED,
    tags             text[] NOT NULL DEFAULT '{}',
    active           boolean NOT NULL DEFAULT true,
    metadata         jsonb NOT NULL DEFAULT '{}',
    frontmatter      jsonb NOT NULL DEFAULT '{}', -- every frontmatter field as written
    content_hash     text NOT NULL,             -- sha256 of the file bytes
    resolved_hash    text NOT NULL,             -- sha256 of resolved_content
    size_bytes       integer NOT NULL CHECK (size_bytes >= 0),
    commit           text NOT NULL,             -- commit that last changed this row
    created_at       timestamptz NOT NULL,      -- time of the commit that created it
    updated_at       timestamptz NOT NULL,      -- time of the commit that last changed it
    search_vector    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(name, '') || ' ' || coalesce(display_name, '')), 'A')
        || setweight(to_tsvector('english', coalesce(description, '') || ' '
                                 || maestro_tags_text(tags)), 'B')
        || setweight(to_tsvector('english', content), 'C')
    ) STORED,
    CONSTRAINT personas_name_format CHECK (name ~ '^[a-z0-9_-]{1,100}$'),
    CONSTRAINT personas_owner_format CHECK (owner ~ '^[a-z0-9_-]{1,100}$'),
    CONSTRAINT personas_key_is_owner_name CHECK (key = owner || '/' || name),
    -- Deferred: one commit may move keys between rows (renames, an id added by `maestro fmt`).
    CONSTRAINT personas_key_key UNIQUE (key) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT personas_path_key UNIQUE (path) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX personas_owner_idx ON personas (owner);
CREATE INDEX personas_parent_idx ON personas (parent_id);
CREATE INDEX personas_parent_key_idx ON personas (parent_key);
CREATE INDEX personas_active_idx ON personas (active);
CREATE INDEX personas_updated_idx ON personas (updated_at);
CREATE INDEX personas_tags_idx ON personas USING gin (tags);
CREATE INDEX personas_metadata_idx ON personas USING gin (metadata jsonb_path_ops);
CREATE INDEX personas_search_idx ON personas USING gin (search_vector);

-- Every version of every persona: one row per (persona, commit that changed it).
-- No foreign key to personas: versions outlive a deleted file (git keeps them too).
CREATE TABLE persona_versions (
    id              bigserial PRIMARY KEY,
    persona_id      uuid NOT NULL,
    key             text NOT NULL,              -- key at that commit
    path            text NOT NULL,
    commit          text NOT NULL,
    action          text NOT NULL CHECK (action IN
                        ('created', 'updated', 'renamed', 'deleted', 'rolled_back')),
    version         text,                       -- frontmatter semver at that commit
    content         text,                       -- body at that commit (NULL for deletions)
    frontmatter     jsonb,
    content_hash    text,
    author_name     text NOT NULL,
    author_email    text NOT NULL,
    committed_at    timestamptz NOT NULL,
    message         text NOT NULL,
    CONSTRAINT persona_versions_once_per_commit UNIQUE (persona_id, commit)
);
CREATE INDEX persona_versions_key_idx ON persona_versions (key);
CREATE INDEX persona_versions_committed_idx ON persona_versions (committed_at);

-- Persona sets: collections of synthetic user personas (the persona-set service's shape).
CREATE TABLE persona_sets (
    key               text PRIMARY KEY,         -- from the path
    path              text NOT NULL UNIQUE,
    name              text NOT NULL,            -- the JSON `name` (or the key)
    description       text,
    rqe_scores        jsonb,
    diversity_score   jsonb,
    validation_scores jsonb,
    generation_cycle  integer,
    status            text CHECK (status IN ('generated', 'expanded', 'validated')),
    metadata          jsonb NOT NULL DEFAULT '{}',
    member_count      integer NOT NULL DEFAULT 0,
    content_hash      text NOT NULL,
    size_bytes        integer NOT NULL,
    commit            text NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX persona_sets_status_idx ON persona_sets (status);

CREATE TABLE persona_set_members (
    set_key           text NOT NULL REFERENCES persona_sets (key)
                          ON DELETE CASCADE ON UPDATE CASCADE,
    position          integer NOT NULL,         -- index in the JSON `personas` array
    name              text NOT NULL,
    persona_data      jsonb NOT NULL,           -- the whole member object
    image_url         text,
    image_prompt      text,
    similarity_score  jsonb,
    validation_status text,
    search_vector     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(jsonb_to_tsvector('english', persona_data, '["string"]'), 'C')
    ) STORED,
    PRIMARY KEY (set_key, name)
);
CREATE INDEX persona_set_members_data_idx ON persona_set_members USING gin (persona_data jsonb_path_ops);
CREATE INDEX persona_set_members_search_idx ON persona_set_members USING gin (search_vector);

-- Templates (templates/<name>.md); is_system_template marks the built-in ones.
CREATE TABLE persona_templates (
    name               text PRIMARY KEY,
    path               text NOT NULL UNIQUE,
    id                 uuid,
    display_name       text,
    description        text,
    content            text NOT NULL,
    category           text,
    version            text NOT NULL DEFAULT '1.0.0',
    tags               text[] NOT NULL DEFAULT '{}',
    is_system_template boolean NOT NULL DEFAULT false,
    metadata           jsonb NOT NULL DEFAULT '{}',
    content_hash       text NOT NULL,
    size_bytes         integer NOT NULL,
    commit             text NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    search_vector      tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name || ' ' || coalesce(display_name, '')), 'A')
        || setweight(to_tsvector('english', coalesce(description, '') || ' '
                                 || coalesce(category, '') || ' ' || maestro_tags_text(tags)), 'B')
        || setweight(to_tsvector('english', content), 'C')
    ) STORED
);
CREATE INDEX persona_templates_category_idx ON persona_templates (category);
CREATE INDEX persona_templates_system_idx ON persona_templates (is_system_template);
CREATE INDEX persona_templates_search_idx ON persona_templates USING gin (search_vector);

-- The audit trail: the commit log as events.
CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    commit       text NOT NULL,
    action       text NOT NULL CHECK (action IN ('created', 'updated', 'renamed', 'deleted',
                                                 'rolled_back', 'history_rewritten')),
    kind         text NOT NULL CHECK (kind IN ('persona', 'template', 'persona_set', 'repository')),
    key          text NOT NULL,
    old_key      text,
    actor_name   text NOT NULL,
    actor_email  text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    message      text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT audit_events_once UNIQUE (commit, kind, key, action)
);
CREATE INDEX audit_events_key_idx ON audit_events (kind, key);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at);

-- The sync cursor: the last mirrored commit per branch (updated in the same transaction).
CREATE TABLE sync_state (
    branch       text PRIMARY KEY,
    commit       text NOT NULL,
    mirrored_at  timestamptz NOT NULL DEFAULT now()
);

-- Files that failed validation at a mirrored commit; removed when a later commit fixes them.
CREATE TABLE sync_errors (
    id          bigserial PRIMARY KEY,
    path        text NOT NULL,
    commit      text NOT NULL,
    rule        text NOT NULL,
    severity    text NOT NULL,
    line        integer,
    "column"    integer,
    message     text NOT NULL,
    fix         text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_errors_path_idx ON sync_errors (path, commit);

-- Operational counters git cannot hold; kept by `maestro rebuild`. Keyed by the stable id.
CREATE TABLE persona_usage (
    persona_id        uuid PRIMARY KEY,
    application_count bigint NOT NULL DEFAULT 0,
    last_applied_at   timestamptz
);

-- Views for the common questions.
CREATE VIEW current_personas AS
    SELECT p.id, p.key, p.owner, p.name, p.display_name, p.description, p.version,
           p.parent_key, p.tags, p.active, p.metadata, p.content, p.resolved_content,
           p.content_hash, p.size_bytes, p.commit, p.created_at, p.updated_at,
           coalesce(u.application_count, 0) AS application_count, u.last_applied_at
    FROM personas p LEFT JOIN persona_usage u ON u.persona_id = p.id;

CREATE VIEW latest_versions AS
    SELECT DISTINCT ON (persona_id) persona_id, key, version, commit, action, author_name,
           author_email, committed_at, message, content_hash
    FROM persona_versions
    ORDER BY persona_id, committed_at DESC, id DESC;

CREATE VIEW set_members AS
    SELECT s.key AS set_key, s.name AS set_name, s.status AS set_status, m.position, m.name,
           m.persona_data, m.image_url, m.image_prompt, m.similarity_score, m.validation_status
    FROM persona_set_members m JOIN persona_sets s ON s.key = m.set_key;

COMMENT ON TABLE personas IS 'Agent personas at the last mirrored commit (valid files; an invalid file keeps its last good row).';
COMMENT ON TABLE persona_versions IS 'One row per persona per mirrored commit that changed it.';
COMMENT ON TABLE persona_sets IS 'Persona sets at the last mirrored commit.';
COMMENT ON TABLE persona_set_members IS 'Members of each persona set, in file order.';
COMMENT ON TABLE persona_templates IS 'Templates at the last mirrored commit.';
COMMENT ON TABLE audit_events IS 'The audit trail: created, updated, renamed, deleted, rolled_back, history_rewritten.';
COMMENT ON TABLE sync_state IS 'The last mirrored commit per branch (the sync cursor).';
COMMENT ON TABLE sync_errors IS 'Errors of files refused at a mirrored commit, until a later commit fixes them.';
COMMENT ON TABLE persona_usage IS 'Operational counters kept by maestro rebuild (written by the Python client).';
COMMENT ON VIEW current_personas IS 'Current personas with resolved content and usage counters.';
COMMENT ON VIEW latest_versions IS 'The latest version row of every persona (deleted ones included).';
COMMENT ON VIEW set_members IS 'Persona set members with their set''s name and status.';
