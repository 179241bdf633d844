-- Tasks: saved runs that triggers start. `spec` is JSON with every secret removed
-- (secret values live in the data dir, never here).
CREATE TABLE tasks (
    name          TEXT PRIMARY KEY,
    spec          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    create_time   BIGINT  NOT NULL,
    last_updated_time BIGINT NOT NULL
);

-- Keys of trigger events already acted on (a webhook delivery, a task and commit, a
-- timer occurrence, an image digest): the run and its key are written in one
-- transaction, so each event starts at most one run, even across restarts.
CREATE TABLE trigger_keys (
    key         TEXT   PRIMARY KEY,
    run_id      TEXT   NOT NULL,
    create_time BIGINT NOT NULL
);

-- The base images each task's last build used, with the digest seen.
CREATE TABLE task_dependencies (
    task        TEXT   NOT NULL,
    image       TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    digest      TEXT   NOT NULL DEFAULT '',
    last_updated_time BIGINT NOT NULL,
    PRIMARY KEY (task, image, kind)
);
CREATE INDEX task_dependencies_image ON task_dependencies (image);

-- The last digest seen for each tracked image tag, from notifications or polling.
CREATE TABLE image_digests (
    image       TEXT   PRIMARY KEY,
    digest      TEXT   NOT NULL,
    last_updated_time BIGINT NOT NULL
);
