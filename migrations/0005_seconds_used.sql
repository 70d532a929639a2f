-- Billing by the second (`[billing] rounding = "second"`) needs the pool's use in seconds;
-- minutes_used stays, always the started minutes of seconds_used, for the quota checks.
ALTER TABLE orgs ADD COLUMN seconds_used BIGINT NOT NULL DEFAULT 0;
UPDATE orgs SET seconds_used = minutes_used * 60;
