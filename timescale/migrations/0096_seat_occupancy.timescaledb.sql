-- One meaning of "occupied" (issue 15), TimescaleDB mode: a seat is occupied when its seat state is
-- in_use, idle or locked (seat_states.occupied); the same columns as the plain-mode variant, computed
-- on every read from usage_hourly (a continuous aggregate) and seat_hourly (0093). machine_day holds
-- each machine's running sums over a UTC day's 24 hours (see the plain-mode file); every hour is
-- answered fresh here (real-time aggregates), so machine_pending_hours is empty.

CREATE OR REPLACE VIEW department_hourly AS
    SELECT d.department, d.bucket, coalesce(sum(d.machines) FILTER (WHERE st.occupied), 0)::float8 AS occupied
    FROM department_seat_hourly d JOIN seat_states st ON st.code = d.code
    GROUP BY 1, 2;

CREATE VIEW machine_day AS
    WITH u AS (
        SELECT h.system_id, h.bucket, h.samples::float8 / max(h.samples) OVER (PARTITION BY h.bucket) AS up
        FROM usage_hourly h),
    o AS (
        SELECT r.system_id, r.bucket,
               (sum(r.samples) FILTER (WHERE st.occupied))::float8 / sum(r.samples) AS occupied
        FROM seat_hourly r JOIN seat_states st ON st.code = r.code
        GROUP BY 1, 2),
    cells AS (
        SELECT coalesce(u.system_id, o.system_id) AS system_id, coalesce(u.bucket, o.bucket) AS bucket,
               coalesce(o.occupied, 0) AS occupied, coalesce(u.up, 0) AS up
        FROM u FULL JOIN o ON o.system_id = u.system_id AND o.bucket = u.bucket),
    grid AS (
        SELECT k.system_id, k.day, g.hr, coalesce(c.occupied, 0) AS occupied, coalesce(c.up, 0) AS up
        FROM (SELECT DISTINCT system_id, time_bucket(INTERVAL '1 day', bucket) AS day FROM cells) k
        CROSS JOIN generate_series(0, 23) AS g(hr)
        LEFT JOIN cells c ON c.system_id = k.system_id AND c.bucket = k.day + g.hr * INTERVAL '1 hour'),
    running AS (
        SELECT system_id, day, hr,
               sum(occupied) OVER (PARTITION BY system_id, day ORDER BY hr) AS occupied,
               sum(up) OVER (PARTITION BY system_id, day ORDER BY hr) AS up
        FROM grid)
    SELECT day, system_id, array_prepend(0::float8, array_agg(occupied ORDER BY hr)) AS occupied,
           array_prepend(0::float8, array_agg(up ORDER BY hr)) AS up
    FROM running GROUP BY day, system_id;

CREATE VIEW machine_pending_hours AS
    SELECT NULL::int AS system_id, NULL::timestamptz AS bucket, NULL::timestamptz AS day, NULL::int AS hr,
           NULL::float8 AS occupied, NULL::float8 AS up, NULL::float8 AS rolled_occupied, NULL::float8 AS rolled_up
    WHERE false;
