-- Hourly and daily lab usage as continuous aggregates.  Real-time aggregation is switched on
-- (off by default since 2.13) so the newest, not yet materialised buckets are answered from raw rows.
-- Refresh windows stay well inside the 30-day raw retention: refreshing a range whose raw rows were
-- dropped would empty the aggregate there, and the aggregates are what keeps months of history.

CREATE MATERIALIZED VIEW usage_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT system_id,
       time_bucket(INTERVAL '1 hour', timestamp)          AS bucket,
       avg(cpu_usage)                                     AS avg_cpu,
       max(cpu_usage)                                     AS max_cpu,
       avg(ram_usage)                                     AS avg_ram,
       avg(disk_usage)                                    AS avg_disk,
       avg(logged_in_users::float8)                       AS avg_users,
       avg((logged_in_users > 0)::int::float8)            AS occupied_ratio,
       count(*)                                           AS samples
FROM usage_metrics
GROUP BY system_id, bucket
WITH NO DATA;

CREATE MATERIALIZED VIEW usage_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT system_id,
       time_bucket(INTERVAL '1 day', timestamp)           AS bucket,
       avg(cpu_usage)                                     AS avg_cpu,
       max(cpu_usage)                                     AS max_cpu,
       avg(ram_usage)                                     AS avg_ram,
       avg(disk_usage)                                    AS avg_disk,
       avg(logged_in_users::float8)                       AS avg_users,
       avg((logged_in_users > 0)::int::float8)            AS occupied_ratio,
       count(*)                                           AS samples
FROM usage_metrics
GROUP BY system_id, bucket
WITH NO DATA;

SELECT add_continuous_aggregate_policy('usage_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
SELECT add_continuous_aggregate_policy('usage_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour');
