-- Outbound webhooks: where Slipway tells other systems about pushes and runs. `spec` is
-- JSON without secrets (the signing secret and custom header values live in the data
-- dir, or sealed with a fleet's key).
CREATE TABLE webhooks (
    name              TEXT    PRIMARY KEY,
    spec              TEXT    NOT NULL,
    enabled           BIGINT  NOT NULL,
    create_time       BIGINT  NOT NULL,
    last_updated_time BIGINT  NOT NULL
);

-- One event for one webhook, kept until delivered or given up on, so deliveries
-- survive restarts; claimed under a lease like runs.
CREATE TABLE webhook_deliveries (
    seq               BIGSERIAL PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    webhook           TEXT    NOT NULL,
    action            TEXT    NOT NULL,
    body              TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    create_time       BIGINT  NOT NULL,
    next_attempt      BIGINT,
    lease_owner       TEXT,
    lease_expires     BIGINT,
    last_status_code  BIGINT,
    last_error        TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, seq);
CREATE INDEX webhook_deliveries_ended ON webhook_deliveries (status, create_time);

-- Every attempt: when, the answer's status (none when there was no answer), how long
-- it took, the error, and the start of the answer's body.
CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL,
    time        BIGINT  NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT  NOT NULL,
    error       TEXT,
    response    TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
