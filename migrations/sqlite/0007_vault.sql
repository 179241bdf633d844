-- One vault for every secret the daemon keeps in a fleet: runs', tasks' and outgoing
-- webhooks', each sealed with the fleet key (AES-256-GCM, bound to its owner's key;
-- the fleet key is never stored). `owner` is `<run id>`, `task-…` or `webhook-…`.
ALTER TABLE run_secrets RENAME TO sealed_secrets;
ALTER TABLE sealed_secrets RENAME COLUMN run_id TO owner;
