-- Plain mode: usage_daily answered a day with any dirty hour by re-adding all of that day's hourly
-- sums (0091), so late in the UTC day every 30-day /departments read ~23 hours x every machine
-- (5,750 rows at 23:00 for 250 machines; 33 of 51 ms, docs/api.md). Sums and counts are additive and
-- the daily rollup is always the sum of the hourly rollup rows of its day (optilab_refresh_rollups
-- recomputes a day from them in the same transaction), so a dirty day is now
--     its daily rollup row  -  the dirty hours' rolled-up rows  +  the dirty hours' live sums,
-- reading one daily row and two hourly rows per machine and dirty hour. The maximum is the greater
-- of the rollup's and the live hours': raw rows are only ever added (the bridge's upsert only fills
-- missing columns), so a dirty hour's live maximum is at least its rolled-up one. Same columns.
--
-- usage_hourly_sums' live branch (0091) matched each raw row's hour against the dirty marks with a
-- semi join, row by row (29,750 loops for two dirty hours of 250 machines): 40-43 ms on the bench;
-- one array of the marks, computed once (an init plan), makes it 15 ms. Same rows.
CREATE OR REPLACE VIEW usage_hourly_sums AS
    SELECT r.* FROM usage_hourly_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM usage_rollup_dirty d WHERE d.bucket = r.bucket)
    UNION ALL
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
          = ANY ((SELECT array_agg(bucket) FROM usage_rollup_dirty)::timestamptz[])
    GROUP BY 1, 2;

CREATE OR REPLACE VIEW usage_daily AS
    WITH dirty_days AS (
        SELECT DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day
        FROM usage_rollup_dirty
    ), changes AS (
        -- +1: the dirty hours from raw rows (usage_hourly_sums' bounded live branch); -1: what the
        -- hourly rollup held for them when the daily row was computed
        SELECT 1 AS sign, h.* FROM usage_hourly_sums h
        WHERE h.bucket >= (SELECT min(bucket) FROM usage_rollup_dirty)
          AND h.bucket <= (SELECT max(bucket) FROM usage_rollup_dirty)
          AND h.bucket IN (SELECT bucket FROM usage_rollup_dirty)
        UNION ALL
        SELECT -1, r.* FROM usage_hourly_rollup r
        WHERE r.bucket = ANY ((SELECT array_agg(bucket) FROM usage_rollup_dirty)::timestamptz[])
    ), delta AS (
        SELECT system_id, date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day,
               sum(sign * coalesce(cpu_sum, 0)) AS cpu_sum, sum(sign * cpu_n) AS cpu_n,
               max(cpu_max) FILTER (WHERE sign = 1) AS cpu_max,
               sum(sign * coalesce(ram_sum, 0)) AS ram_sum, sum(sign * ram_n) AS ram_n,
               sum(sign * coalesce(disk_sum, 0)) AS disk_sum, sum(sign * disk_n) AS disk_n,
               sum(sign * coalesce(users_sum, 0)) AS users_sum, sum(sign * users_n) AS users_n,
               sum(sign * occupied_n) AS occupied_n, sum(sign * samples) AS samples
        FROM changes GROUP BY 1, 2
    ), sums AS (
        SELECT r.* FROM usage_daily_rollup r WHERE r.bucket NOT IN (SELECT day FROM dirty_days)
        UNION ALL
        SELECT coalesce(r.system_id, d.system_id), coalesce(r.bucket, d.day),
               coalesce(r.cpu_sum, 0) + coalesce(d.cpu_sum, 0), (coalesce(r.cpu_n, 0) + coalesce(d.cpu_n, 0))::int8,
               greatest(r.cpu_max, d.cpu_max),
               coalesce(r.ram_sum, 0) + coalesce(d.ram_sum, 0), (coalesce(r.ram_n, 0) + coalesce(d.ram_n, 0))::int8,
               coalesce(r.disk_sum, 0) + coalesce(d.disk_sum, 0), (coalesce(r.disk_n, 0) + coalesce(d.disk_n, 0))::int8,
               coalesce(r.users_sum, 0) + coalesce(d.users_sum, 0),
               (coalesce(r.users_n, 0) + coalesce(d.users_n, 0))::int8,
               (coalesce(r.occupied_n, 0) + coalesce(d.occupied_n, 0))::int8,
               (coalesce(r.samples, 0) + coalesce(d.samples, 0))::int8
        FROM (SELECT * FROM usage_daily_rollup
              WHERE bucket >= (SELECT min(day) FROM dirty_days) AND bucket <= (SELECT max(day) FROM dirty_days)
                AND bucket IN (SELECT day FROM dirty_days)) r
        FULL JOIN delta d ON d.system_id = r.system_id AND d.day = r.bucket
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
