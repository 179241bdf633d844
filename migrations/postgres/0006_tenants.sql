-- Tenants: every run, task and outbound webhook belongs to one, and a tenant's names
-- are its own (two tenants may each have a task "build-app"). What existed before
-- belongs to the default tenant, which the flat `tokens` setting still speaks for.
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
-- Where the run's build-cache mounts live, decided when it was queued (its task, its
-- repository, or the run alone), always within its tenant.
ALTER TABLE runs ADD COLUMN cache_namespace TEXT;
CREATE INDEX runs_tenant ON runs (tenant, seq);

ALTER TABLE tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE tasks DROP CONSTRAINT tasks_pkey;
ALTER TABLE tasks ADD PRIMARY KEY (tenant, name);

ALTER TABLE task_dependencies ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE task_dependencies DROP CONSTRAINT task_dependencies_pkey;
ALTER TABLE task_dependencies ADD PRIMARY KEY (tenant, task, image, kind);

ALTER TABLE webhooks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhooks DROP CONSTRAINT webhooks_pkey;
ALTER TABLE webhooks ADD PRIMARY KEY (tenant, name);
ALTER TABLE webhook_deliveries ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
DROP INDEX webhook_deliveries_by_webhook;
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (tenant, webhook, seq);

-- Who each token speaks for, by the tokens' hashes (never the tokens), and the
-- repositories each tenant owns: one row every node of a fleet reads.
CREATE TABLE tenant_directory (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    directory         TEXT    NOT NULL,
    last_updated_time BIGINT  NOT NULL
);

-- Uploaded contexts and the tenant that sent each: a run may name only its own
-- tenant's uploads.
CREATE TABLE uploads (
    id          TEXT   PRIMARY KEY,
    tenant      TEXT   NOT NULL,
    size        BIGINT NOT NULL,
    create_time BIGINT NOT NULL
);
