-- Tables every component relies on, identical in both storage modes (docs/interfaces.md).
-- Time-series tables (usage_metrics, samples) and the aggregates come in mode-specific files.

CREATE TABLE systems (
    id           serial PRIMARY KEY,
    instance     text UNIQUE NOT NULL,            -- Prometheus target identity "HOST:PORT"
    hostname     text,
    ip_address   varchar(45),
    department   text,
    os_type      text,
    os_version   text,
    status       varchar(20) NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
    health_state varchar(20) CHECK (health_state IN ('healthy', 'degraded', 'offline', 'dead')),
    last_seen    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- added beyond the contract: time of the sample that set `status`, so a retried (older) request
    -- cannot overwrite a newer status
    status_at    timestamptz
);
CREATE INDEX systems_department ON systems (department);

CREATE TABLE status_history (
    system_id    int NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    timestamp    timestamptz NOT NULL,
    status       text,
    health_state text,
    reason       text
);
CREATE INDEX status_history_system_time ON status_history (system_id, timestamp DESC);

CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    system_id   int REFERENCES systems (id) ON DELETE SET NULL,
    fingerprint text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    status      text NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname   text,
    alert_type  text,
    severity    text,
    department  text,
    instance    text,
    message     text,
    labels      jsonb NOT NULL DEFAULT '{}',
    annotations jsonb NOT NULL DEFAULT '{}',
    timestamp   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz,
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX alerts_status_starts ON alerts (status, starts_at DESC);
CREATE INDEX alerts_system ON alerts (system_id);

-- One row per allow-listed series (metric name + its labels without __name__).
CREATE TABLE series (
    id     bigserial PRIMARY KEY,
    metric text NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}',
    UNIQUE (metric, labels)
);
