-- TimescaleDB: the time-series tables are hypertables with one-day chunks (30 chunks of raw data
-- at 30 days retention; the 7-day default would make retention and compression too coarse).
-- Chunks older than 7 days are compressed, segmented by system (or series) so per-host queries
-- decompress only their own segment; raw rows older than 30 days are dropped by policy.

CREATE FUNCTION storage_mode() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'timescaledb'::text $$;

CREATE TABLE usage_metrics (
    system_id       int NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    timestamp       timestamptz NOT NULL,
    cpu_usage       float8,
    ram_usage       float8,
    disk_usage      float8,
    logged_in_users int,
    PRIMARY KEY (system_id, timestamp)
);
SELECT create_hypertable('usage_metrics', 'timestamp', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE usage_metrics SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'system_id',
    timescaledb.compress_orderby = 'timestamp DESC'
);
SELECT add_compression_policy('usage_metrics', INTERVAL '7 days');
SELECT add_retention_policy('usage_metrics', INTERVAL '30 days');

-- No foreign key to series (hot insert path; series rows are never deleted).
CREATE TABLE samples (
    series_id bigint NOT NULL,
    timestamp timestamptz NOT NULL,
    value     float8 NOT NULL,
    PRIMARY KEY (series_id, timestamp)
);
SELECT create_hypertable('samples', 'timestamp', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE samples SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'series_id',
    timescaledb.compress_orderby = 'timestamp DESC'
);
SELECT add_compression_policy('samples', INTERVAL '7 days');
SELECT add_retention_policy('samples', INTERVAL '30 days');
