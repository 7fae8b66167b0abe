-- maestro-git mirror schema, version 5: the `promoted` action.
--
-- A promotion (`maestro promote`, or any commit with a `Maestro-Action: promoted` trailer)
-- copies a persona from one branch onto another; its audit events and version rows carry the
-- action `promoted`. Like every migration from 0005 on, this runs once in each mirror's schema.
ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'created', 'updated', 'renamed', 'deleted', 'rolled_back', 'promoted', 'history_rewritten'));
ALTER TABLE persona_versions DROP CONSTRAINT IF EXISTS persona_versions_action_check;
ALTER TABLE persona_versions ADD CONSTRAINT persona_versions_action_check CHECK (action IN (
    'created', 'updated', 'renamed', 'deleted', 'rolled_back', 'promoted'));
COMMENT ON TABLE audit_events IS 'The audit trail: created, updated, renamed, deleted, rolled_back, promoted, history_rewritten.';
