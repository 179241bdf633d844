-- Tenants: every run, task and outbound webhook belongs to one, and a tenant's names
-- are its own (two tenants may each have a task "build-app"). What existed before
-- belongs to the default tenant, which the flat `tokens` setting still speaks for.
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
-- Where the run's build-cache mounts live, decided when it was queued (its task, its
-- repository, or the run alone), always within its tenant.
ALTER TABLE runs ADD COLUMN cache_namespace TEXT;
CREATE INDEX runs_tenant ON runs (tenant, seq);

CREATE TABLE tasks_by_tenant (
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    spec          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    create_time   BIGINT  NOT NULL,
    last_updated_time BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
INSERT INTO tasks_by_tenant SELECT 'default', name, spec, status, create_time, last_updated_time FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_by_tenant RENAME TO tasks;

CREATE TABLE task_dependencies_by_tenant (
    tenant      TEXT   NOT NULL,
    task        TEXT   NOT NULL,
    image       TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    digest      TEXT   NOT NULL DEFAULT '',
    last_updated_time BIGINT NOT NULL,
    PRIMARY KEY (tenant, task, image, kind)
);
INSERT INTO task_dependencies_by_tenant SELECT 'default', task, image, kind, digest, last_updated_time FROM task_dependencies;
DROP TABLE task_dependencies;
ALTER TABLE task_dependencies_by_tenant RENAME TO task_dependencies;
CREATE INDEX task_dependencies_image ON task_dependencies (image);

CREATE TABLE webhooks_by_tenant (
    tenant            TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    spec              TEXT    NOT NULL,
    enabled           INTEGER NOT NULL,
    create_time       INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
INSERT INTO webhooks_by_tenant SELECT 'default', name, spec, enabled, create_time, last_updated_time FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_by_tenant RENAME TO webhooks;
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
