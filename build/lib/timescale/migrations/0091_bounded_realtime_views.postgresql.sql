-- Plain mode: bound the real-time branches of usage_hourly / usage_daily by the pending range.
--
-- Between maintenance passes some hours are marked dirty. 0003's views then read every raw row of
-- a machine (the date_bin(timestamp) filter pushed into the raw branch cannot use an index) and
-- usage_daily's dirty-day branch read every hourly rollup row: 30-day series 144 ms p50, department
-- summary over 24 h 741 ms (docs/api.md). Uncorrelated sub-selects on the dirty range become init
-- plans, so they turn into index conditions and partition pruning. Same rows, same columns and types.

CREATE OR REPLACE VIEW usage_hourly_sums AS
    SELECT r.* FROM usage_hourly_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM usage_rollup_dirty d WHERE d.bucket = r.bucket)
    UNION ALL
    -- the body of usage_hour_sums(), written out so the bounds below reach the scan of usage_metrics
    SELECT m.system_id, date_bin(INTERVAL '1 hour', m.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00'),
           sum(m.cpu_usage), count(m.cpu_usage), max(m.cpu_usage),
           sum(m.ram_usage), count(m.ram_usage),
           sum(m.disk_usage), count(m.disk_usage),
           sum(m.logged_in_users)::float8, count(m.logged_in_users),
           count(*) FILTER (WHERE m.logged_in_users > 0),
           count(*)
    FROM usage_metrics m
    WHERE m.timestamp >= (SELECT min(bucket) FROM usage_rollup_dirty)
      AND m.timestamp < (SELECT max(bucket) FROM usage_rollup_dirty) + INTERVAL '1 hour'
      AND date_bin(INTERVAL '1 hour', m.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00')
          IN (SELECT bucket FROM usage_rollup_dirty)
    GROUP BY 1, 2;

CREATE OR REPLACE VIEW usage_daily AS
    WITH dirty_days AS (
        SELECT DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day
        FROM usage_rollup_dirty
    ), sums AS (
        SELECT r.* FROM usage_daily_rollup r WHERE r.bucket NOT IN (SELECT day FROM dirty_days)
        UNION ALL
        SELECT h.system_id, d.day, sum(h.cpu_sum), sum(h.cpu_n)::int8, max(h.cpu_max), sum(h.ram_sum),
               sum(h.ram_n)::int8, sum(h.disk_sum), sum(h.disk_n)::int8, sum(h.users_sum),
               sum(h.users_n)::int8, sum(h.occupied_n)::int8, sum(h.samples)::int8
        FROM dirty_days d
        JOIN usage_hourly_sums h ON h.bucket >= d.day AND h.bucket < d.day + INTERVAL '1 day'
        WHERE h.bucket >= (SELECT min(day) FROM dirty_days)
          AND h.bucket < (SELECT max(day) FROM dirty_days) + INTERVAL '1 day'
        GROUP BY h.system_id, d.day
    )
    SELECT system_id, bucket,
           cpu_sum / NULLIF(cpu_n, 0)       AS avg_cpu,
           cpu_max                          AS max_cpu,
           ram_sum / NULLIF(ram_n, 0)       AS avg_ram,
           disk_sum / NULLIF(disk_n, 0)     AS avg_disk,
           users_sum / NULLIF(users_n, 0)   AS avg_users,
           occupied_n::float8 / NULLIF(users_n, 0) AS occupied_ratio,
           samples
    FROM sums;
