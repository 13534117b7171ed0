-- One meaning of "occupied" (issue 15), plain-PostgreSQL mode: a seat is occupied when somebody sits
-- at it, i.e. its seat state is in_use, idle or locked (seat_states.occupied, migration 0092). A
-- machine with only a remote SSH session is free on the board, so it is not occupied in the reports
-- either. Until now department_hourly counted usage rows with logged_in_users > 0 (any login).
--
-- 1. department_hourly's occupied machines are now the department's machines in occupied seat
--    states, summed from department_seat_hourly_rollup (0094), which the same trigger keeps; the live
--    branch counts the dirty hours' raw seat samples once, as 0094's department_seat_hourly does.
-- 2. machine_day_rollup: per machine and UTC day, the running sums over the day's 24 hours of the
--    machine's occupied share and of its "up" share (its usage samples / the most any machine
--    delivered in that hour), as 25-element arrays starting at 0. The hours [a, b) of a day then cost
--    two subscripts: occupied[b + 1] - occupied[a + 1]. /reports/machines weights hours by opening
--    hours; a day's opening hours are one or two runs of equal weight, so a month of one machine is
--    30 rows and ~60 subscripts instead of 720 machine-hours. Kept by a statement trigger on
--    usage_hourly_rollup's insert (named to fire after 0093's and 0094's) for the days it touches.
-- 3. machine_pending_hours: per machine and hour still marked dirty, the live shares (from the
--    bounded live branches) next to what machine_day_rollup holds for that hour, so a report replaces
--    the stale part of the running sums by the live one without rebuilding whole days.

CREATE OR REPLACE FUNCTION department_occupied_hours(hours timestamptz[])
RETURNS TABLE (department text, bucket timestamptz, occupied float8) LANGUAGE sql STABLE AS $$
    SELECT r.department, r.bucket, coalesce(sum(r.machines) FILTER (WHERE st.occupied), 0)::float8
    FROM department_seat_hourly_rollup r JOIN seat_states st ON st.code = r.code
    WHERE r.bucket = ANY (hours)
    GROUP BY 1, 2
$$;

-- Seat counts first: the occupied machines are read from them.
CREATE OR REPLACE FUNCTION seat_rollup_follow_usage_departments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT bucket) INTO hours FROM new_rows;
    IF hours IS NOT NULL THEN
        DELETE FROM department_seat_hourly_rollup WHERE bucket = ANY (hours);
        INSERT INTO department_seat_hourly_rollup SELECT * FROM department_seat_hours(hours);
        DELETE FROM department_hourly_rollup WHERE bucket = ANY (hours);
        INSERT INTO department_hourly_rollup SELECT * FROM department_occupied_hours(hours);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE VIEW department_hourly AS
    SELECT r.department, r.bucket, r.occupied FROM department_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT s.department, c.bucket, coalesce(sum(c.samples::float8 / c.n) FILTER (WHERE st.occupied), 0)
    FROM (SELECT c.*, sum(c.samples) OVER (PARTITION BY c.system_id, c.bucket) AS n
          FROM (SELECT ARRAY(SELECT DISTINCT bucket FROM usage_rollup_dirty) AS hours) d,
               LATERAL seat_hour_counts(d.hours) c) c
    JOIN seat_states st ON st.code = c.code
    JOIN systems s ON s.id = c.system_id
    WHERE s.department IS NOT NULL
    GROUP BY 1, 2;

DELETE FROM department_hourly_rollup;
INSERT INTO department_hourly_rollup
SELECT r.department, r.bucket, coalesce(sum(r.machines) FILTER (WHERE st.occupied), 0)
FROM department_seat_hourly_rollup r JOIN seat_states st ON st.code = r.code
GROUP BY 1, 2;

CREATE TABLE machine_day_rollup (
    day timestamptz NOT NULL,
    system_id int NOT NULL,
    occupied float8[] NOT NULL,  -- occupied[h + 1] = occupied seat-hours of the day before hour h
    up float8[] NOT NULL,        -- the same for up hours
    PRIMARY KEY (day, system_id)
);

-- Per machine and hour of the given hour rows' buckets: the occupied share (seat samples in occupied
-- states / all seat samples) and the up share. Hours without either are 0 in both.
CREATE FUNCTION machine_hour_shares(lower timestamptz, upper timestamptz)
RETURNS TABLE (system_id int, bucket timestamptz, occupied float8, up float8) LANGUAGE sql STABLE AS $$
    WITH u AS (
        SELECT r.system_id, r.bucket, r.samples::float8 / max(r.samples) OVER (PARTITION BY r.bucket) AS up
        FROM usage_hourly_rollup r WHERE r.bucket >= lower AND r.bucket < upper),
    o AS (
        SELECT r.system_id, r.bucket,
               (sum(r.samples) FILTER (WHERE st.occupied))::float8 / sum(r.samples) AS occupied
        FROM seat_hourly_rollup r JOIN seat_states st ON st.code = r.code
        WHERE r.bucket >= lower AND r.bucket < upper
        GROUP BY 1, 2)
    SELECT coalesce(u.system_id, o.system_id), coalesce(u.bucket, o.bucket),
           coalesce(o.occupied, 0), coalesce(u.up, 0)
    FROM u FULL JOIN o ON o.system_id = u.system_id AND o.bucket = u.bucket
$$;

-- The running sums of the given UTC days, from the hourly rollups.
CREATE FUNCTION machine_day_sums(days timestamptz[])
RETURNS SETOF machine_day_rollup LANGUAGE sql STABLE AS $$
    WITH cells AS (
        SELECT h.system_id, date_bin(INTERVAL '1 day', h.bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day,
               extract(hour FROM h.bucket AT TIME ZONE 'UTC')::int AS hr, h.occupied, h.up
        FROM unnest(days) AS d(day), LATERAL machine_hour_shares(d.day, d.day + INTERVAL '1 day') h),
    grid AS (
        SELECT k.system_id, k.day, g.hr, coalesce(c.occupied, 0) AS occupied, coalesce(c.up, 0) AS up
        FROM (SELECT DISTINCT system_id, day FROM cells) k
        CROSS JOIN generate_series(0, 23) AS g(hr)
        LEFT JOIN cells c ON c.system_id = k.system_id AND c.day = k.day AND c.hr = g.hr),
    running AS (
        SELECT system_id, day, hr,
               sum(occupied) OVER (PARTITION BY system_id, day ORDER BY hr) AS occupied,
               sum(up) OVER (PARTITION BY system_id, day ORDER BY hr) AS up
        FROM grid)
    SELECT day, system_id, array_prepend(0::float8, array_agg(occupied ORDER BY hr)),
           array_prepend(0::float8, array_agg(up ORDER BY hr))
    FROM running GROUP BY day, system_id
$$;

CREATE FUNCTION seat_rollup_follow_usage_machines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    days timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00'))
    INTO days FROM new_rows;
    IF days IS NOT NULL THEN
        DELETE FROM machine_day_rollup WHERE day = ANY (days);
        INSERT INTO machine_day_rollup SELECT * FROM machine_day_sums(days);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER seat_rollup_follow_usage_machines AFTER INSERT ON usage_hourly_rollup
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_rollup_follow_usage_machines();

CREATE VIEW machine_day AS SELECT day, system_id, occupied, up FROM machine_day_rollup;

-- Every machine x every dirty hour: the live shares and the rolled-up ones they replace. The live
-- values come from the bounded live branches (usage_hourly_sums, seat_hour_counts).
CREATE VIEW machine_pending_hours AS
    WITH hours AS MATERIALIZED (SELECT DISTINCT bucket FROM usage_rollup_dirty),
    u AS (
        SELECT h.system_id, h.bucket, h.samples::float8 / max(h.samples) OVER (PARTITION BY h.bucket) AS up
        FROM usage_hourly_sums h
        WHERE h.bucket >= (SELECT min(bucket) FROM usage_rollup_dirty)
          AND h.bucket <= (SELECT max(bucket) FROM usage_rollup_dirty)
          AND h.bucket IN (SELECT bucket FROM hours)),
    o AS (
        SELECT c.system_id, c.bucket,
               (sum(c.samples) FILTER (WHERE st.occupied))::float8 / sum(c.samples) AS occupied
        FROM (SELECT ARRAY(SELECT bucket FROM hours) AS hours) d, LATERAL seat_hour_counts(d.hours) c
        JOIN seat_states st ON st.code = c.code
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

-- Backfill from the hourly rollups already there.
INSERT INTO machine_day_rollup
SELECT * FROM machine_day_sums(ARRAY(
    SELECT DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') FROM usage_hourly_rollup));
