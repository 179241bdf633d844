-- Runs and their queue state. Times are milliseconds since the Unix epoch (UTC),
-- from the store's one clock. Secret values are never stored here.
CREATE TABLE runs (
    seq               BIGSERIAL PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    status            TEXT    NOT NULL,
    run_type          TEXT    NOT NULL,
    task              TEXT,
    platform          TEXT    NOT NULL DEFAULT 'linux/amd64',
    request           TEXT    NOT NULL,
    image_names       TEXT    NOT NULL DEFAULT '',
    create_time       BIGINT  NOT NULL,
    start_time        BIGINT,
    finish_time       BIGINT,
    last_updated_time BIGINT  NOT NULL,
    output_images     TEXT    NOT NULL DEFAULT '[]',
    image_dependencies TEXT   NOT NULL DEFAULT '[]',
    error_message     TEXT,
    lease_owner       TEXT,
    lease_expires     BIGINT,
    attempt           BIGINT  NOT NULL DEFAULT 0,
    cancel_requested  BIGINT  NOT NULL DEFAULT 0,
    source_trigger    TEXT,
    image_update_trigger TEXT,
    timer_trigger     TEXT
);
CREATE INDEX runs_queue ON runs (status, seq);
CREATE INDEX runs_created ON runs (create_time);
