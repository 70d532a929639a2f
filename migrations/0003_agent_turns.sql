-- How the builtin agent runs its conversations (closing line, first speaker, end-of-turn
-- silence, no-input timeout, maximum duration), as JSON; NULL means every default.
ALTER TABLE agents ADD COLUMN turns TEXT;
