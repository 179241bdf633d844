-- A run kept past the retention period (`az acr task update-run --no-archive false`):
-- the purge leaves its log and context alone.
ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
