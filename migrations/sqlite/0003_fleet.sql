-- A fleet's run secrets, sealed with the fleet key (AES-256-GCM; the key is never
-- stored): any node can run the run. Removed when the run ends.
CREATE TABLE run_secrets (
    run_id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);

-- A live run's log, in the pieces its worker wrote, so a follower on any node reads it.
-- Moved to the blob store when the run ends.
CREATE TABLE log_chunks (
    run_id TEXT NOT NULL,
    start_offset BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, start_offset)
);
