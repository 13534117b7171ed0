-- Plain mode: the live branches over raw seat samples (hours still marked dirty) found the machines'
-- seat series by joining samples to systems on the series' instance label inside one join; on the
-- 10.8 M-row bench the planner estimated 31 rows and ran a nested loop comparing every sample with
-- every system (7.4 M rows removed by the join filter, 2.6 s for a 30-day department history).
-- Resolving the 250 seat series first (a materialized CTE) turns the rest into one primary-key range
-- scan of samples per series. Same rows, same columns; every caller (seat_hourly, the department
-- views, machine_pending_hours, the refresh trigger) gets the faster plan.

CREATE OR REPLACE FUNCTION seat_hour_counts(hours timestamptz[])
RETURNS TABLE (system_id int, bucket timestamptz, code smallint, samples int) LANGUAGE sql STABLE AS $$
    WITH ss AS MATERIALIZED (SELECT system_id, series_id FROM seat_series)
    SELECT ss.system_id, date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00'),
           sm.value::smallint, count(*)::int
    FROM ss JOIN samples sm ON sm.series_id = ss.series_id
    WHERE sm.timestamp >= (SELECT min(h) FROM unnest(hours) AS h)
      AND sm.timestamp < (SELECT max(h) FROM unnest(hours) AS h) + INTERVAL '1 hour'
      AND date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00') = ANY (hours)
    GROUP BY 1, 2, 3
$$;

CREATE OR REPLACE VIEW seat_hourly AS
    SELECT r.system_id, r.bucket, r.code, r.samples FROM seat_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT c.system_id, c.bucket, c.code, c.samples
    FROM (SELECT ARRAY(SELECT DISTINCT bucket FROM usage_rollup_dirty) AS hours) d, LATERAL seat_hour_counts(d.hours) c;

-- The department views' live branches: per machine and dirty hour, its seat samples counted by one
-- primary-key range scan per seat series (LATERAL), the machine's shares taken over a window that is
-- partitioned by department too, so a department filter on the view reaches the systems scan and a
-- one-department history reads that department's samples only (50 of 250 machines on the bench).
CREATE VIEW department_seat_live AS
    SELECT c.department, c.system_id, c.bucket, c.code,
           c.samples::float8 / sum(c.samples) OVER (PARTITION BY c.department, c.system_id, c.bucket) AS machines
    FROM (
        SELECT s.department, s.id AS system_id, n.bucket, n.code, n.samples
        FROM systems s
        JOIN series se ON se.metric = 'optilab_seat_state' AND se.labels ->> 'instance' = s.instance
        CROSS JOIN LATERAL (
            SELECT date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket,
                   sm.value::smallint AS code, count(*) AS samples
            FROM samples sm
            WHERE sm.series_id = se.id
              AND sm.timestamp >= (SELECT min(bucket) FROM usage_rollup_dirty)
              AND sm.timestamp < (SELECT max(bucket) FROM usage_rollup_dirty) + INTERVAL '1 hour'
              AND date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00')
                  = ANY ((SELECT array_agg(bucket) FROM usage_rollup_dirty)::timestamptz[])  -- once, not per series
            GROUP BY 1, 2) n
        WHERE s.department IS NOT NULL) c;

CREATE OR REPLACE VIEW department_seat_hourly AS
    SELECT r.department, r.bucket, r.code, r.machines FROM department_seat_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT department, bucket, code, sum(machines) FROM department_seat_live GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW department_hourly AS
    SELECT r.department, r.bucket, r.occupied FROM department_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT l.department, l.bucket, coalesce(sum(l.machines) FILTER (WHERE st.occupied), 0)
    FROM department_seat_live l JOIN seat_states st ON st.code = l.code
    GROUP BY 1, 2;

-- machine_pending_hours (0096) read the dirty hours through usage_hourly_sums and seat_hour_counts
-- (92 ms of the machines report's 138 on the bench, two dirty hours). Per machine, the usage samples
-- of a dirty hour are now counted by one primary-key range scan (index only: only the count is
-- needed), and the occupied share comes from department_seat_live above. Same columns and rows.
CREATE OR REPLACE VIEW machine_pending_hours AS
    WITH hours AS MATERIALIZED (SELECT DISTINCT bucket FROM usage_rollup_dirty),
    u AS (
        SELECT s.id AS system_id, c.bucket, c.samples::float8 / max(c.samples) OVER (PARTITION BY c.bucket) AS up
        FROM systems s CROSS JOIN LATERAL (
            SELECT date_bin(INTERVAL '1 hour', m.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket,
                   count(*) AS samples
            FROM usage_metrics m
            WHERE m.system_id = s.id
              AND m.timestamp >= (SELECT min(bucket) FROM usage_rollup_dirty)
              AND m.timestamp < (SELECT max(bucket) FROM usage_rollup_dirty) + INTERVAL '1 hour'
              AND date_bin(INTERVAL '1 hour', m.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00')
                  = ANY ((SELECT array_agg(bucket) FROM usage_rollup_dirty)::timestamptz[])
            GROUP BY 1) c),
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
