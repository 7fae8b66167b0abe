-- Personas' typed agent settings (issue 14): the model and the tool allowlist an agent tool
-- runs them with (Claude Code / Copilot `model` and `tools`). NULL tools = the tool's default.
ALTER TABLE personas ADD COLUMN model text, ADD COLUMN tools text[];
CREATE INDEX personas_tools_idx ON personas USING gin (tools);
CREATE INDEX personas_model_idx ON personas (model);
