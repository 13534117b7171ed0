-- Plain mode: the live branches (0091, 0097, 0098) read the dirty hours' raw rows with bounds taken
-- from usage_rollup_dirty by subqueries, i.e. values only known when the query runs. The planner
-- therefore planned every daily partition of usage_metrics and samples (31 on the 10.8 M-row bench)
-- under each per-machine or per-series LATERAL scan and pruned them again on every rescan: on the
-- bench, with two dirty hours (~30,000 rows per table), machine_pending_hours took 27 ms,
-- department_seat_live 17 ms and usage_hourly_sums' live branch 17 ms (medians, warm cache).
--
-- The dirty hours are now read by two plpgsql functions that look the marks up first and then run
-- one statement per dirty hour with the hour's bounds as parameters of a freshly planned statement
-- (EXECUTE ... USING): only that hour's partition is planned and scanned, no row is matched against
-- the marks, and the hour is a constant, so rows are grouped by machine (and seat state) only, not
-- by a date_bin computed per row. Same rows, same columns; the views keep their names and shapes,
-- and the refresh trigger still uses seat_hour_counts.

-- The dirty hours' usage sums per machine and hour, as usage_hourly_rollup's rows would hold them.
CREATE FUNCTION dirty_usage_hour_sums() RETURNS SETOF usage_hourly_rollup
LANGUAGE plpgsql STABLE ROWS 500 AS $$
DECLARE
    hour timestamptz;
BEGIN
    FOR hour IN SELECT DISTINCT d.bucket FROM usage_rollup_dirty d LOOP
        RETURN QUERY EXECUTE $q$
            SELECT m.system_id, $1,
                   sum(m.cpu_usage), count(m.cpu_usage), max(m.cpu_usage),
                   sum(m.ram_usage), count(m.ram_usage),
                   sum(m.disk_usage), count(m.disk_usage),
                   sum(m.logged_in_users)::float8, count(m.logged_in_users),
                   count(*) FILTER (WHERE m.logged_in_users > 0),
                   count(*)
            FROM usage_metrics m
            WHERE m.timestamp >= $1 AND m.timestamp < $2
            GROUP BY m.system_id $q$ USING hour, hour + INTERVAL '1 hour';
    END LOOP;
END $$;

-- The dirty hours' seat samples per machine, hour and state code (seat_hour_counts' rows).
CREATE FUNCTION dirty_seat_hour_counts()
RETURNS TABLE (system_id int, bucket timestamptz, code smallint, samples int)
LANGUAGE plpgsql STABLE ROWS 1500 AS $$
DECLARE
    hour timestamptz;
BEGIN
    FOR hour IN SELECT DISTINCT d.bucket FROM usage_rollup_dirty d LOOP
        RETURN QUERY EXECUTE $q$
            WITH ss AS MATERIALIZED (SELECT system_id, series_id FROM seat_series)
            SELECT ss.system_id, $1, sm.value::smallint, count(*)::int
            FROM ss JOIN samples sm ON sm.series_id = ss.series_id
            WHERE sm.timestamp >= $1 AND sm.timestamp < $2
            GROUP BY ss.system_id, sm.value::smallint $q$ USING hour, hour + INTERVAL '1 hour';
    END LOOP;
END $$;

CREATE OR REPLACE VIEW usage_hourly_sums AS
    SELECT r.* FROM usage_hourly_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM usage_rollup_dirty d WHERE d.bucket = r.bucket)
    UNION ALL
    SELECT * FROM dirty_usage_hour_sums();

CREATE OR REPLACE VIEW seat_hourly AS
    SELECT r.system_id, r.bucket, r.code, r.samples FROM seat_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT c.system_id, c.bucket, c.code, c.samples FROM dirty_seat_hour_counts() c;

CREATE OR REPLACE VIEW department_seat_live AS
    SELECT s.department, c.system_id, c.bucket, c.code,
           c.samples::float8 / sum(c.samples) OVER (PARTITION BY s.department, c.system_id, c.bucket) AS machines
    FROM dirty_seat_hour_counts() c JOIN systems s ON s.id = c.system_id
    WHERE s.department IS NOT NULL;

CREATE OR REPLACE VIEW usage_daily AS
    WITH dirty_days AS (
        SELECT DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day
        FROM usage_rollup_dirty
    ), changes AS (
        -- +1: the dirty hours from raw rows; -1: what the hourly rollup held for them when the daily
        -- row was computed
        SELECT 1 AS sign, h.* FROM dirty_usage_hour_sums() h
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

-- Every machine x every dirty hour: the live shares (the functions above, each run once) and the
-- rolled-up ones they replace.
CREATE OR REPLACE VIEW machine_pending_hours AS
    WITH hours AS MATERIALIZED (SELECT DISTINCT bucket FROM usage_rollup_dirty),
    u AS (
        SELECT h.system_id, h.bucket, h.samples::float8 / max(h.samples) OVER (PARTITION BY h.bucket) AS up
        FROM dirty_usage_hour_sums() h),
    o AS (
        SELECT l.system_id, l.bucket, coalesce(sum(l.machines) FILTER (WHERE st.occupied), 0) AS occupied
        FROM department_seat_live l JOIN seat_states st ON st.code = l.code
        GROUP BY 1, 2)
    SELECT s.id AS system_id, hours.bucket,
           date_bin(INTERVAL '1 day', hours.bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day,
           extract(hour FROM hours.bucket AT TIME ZONE 'UTC')::int AS hr,
           coalesce(o.occupied, 0) AS occupied, coalesce(u.up, 0) AS up,
           coalesce(r.occupied[extract(hour FROM hours.bucket AT TIME ZONE 'UTC')::int + 2]
                    - r.occupied[extract(hour FROM hours.bucket AT TIME ZONE 'UTC')::int + 1], 0) AS rolled_occupied,
           coalesce(r.up[extract(hour FROM hours.bucket AT TIME ZONE 'UTC')::int + 2]
                    - r.up[extract(hour FROM hours.bucket AT TIME ZONE 'UTC')::int + 1], 0) AS rolled_up
    FROM systems s CROSS JOIN hours
    LEFT JOIN u ON u.system_id = s.id AND u.bucket = hours.bucket
    LEFT JOIN o ON o.system_id = s.id AND o.bucket = hours.bucket
    LEFT JOIN machine_day_rollup r
        ON r.system_id = s.id AND r.day = date_bin(INTERVAL '1 day', hours.bucket, TIMESTAMPTZ '2000-01-01 00:00+00');
