-- When the callee's phone started ringing (the first 180/183 of the attempt), in ms since
-- the epoch; NULL until then.
ALTER TABLE calls ADD COLUMN ringing_at BIGINT;
