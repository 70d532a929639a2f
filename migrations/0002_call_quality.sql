-- Media quality measured during the call (packets, loss, jitter, estimated MOS), as JSON.
ALTER TABLE calls ADD COLUMN quality TEXT;
