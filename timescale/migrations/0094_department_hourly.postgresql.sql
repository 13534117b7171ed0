-- Per department and hour (issue 15's reports), plain-PostgreSQL mode: occupied machines (the sum of
-- the machines' occupied shares) and machines in each seat state (each machine's share of its seat
-- samples, summed). 30 days of a department are 720 rows instead of 36,000 machine-hours. Kept by a
-- statement trigger on usage_hourly_rollup's insert in optilab_refresh_rollups(), named to fire after
-- 0093's seat trigger (triggers fire in name order); dirty hours are answered live.
CREATE TABLE department_hourly_rollup (
    department text NOT NULL,
    bucket timestamptz NOT NULL,
    occupied float8 NOT NULL,
    PRIMARY KEY (department, bucket)
);
CREATE TABLE department_seat_hourly_rollup (
    department text NOT NULL,
    bucket timestamptz NOT NULL,
    code smallint NOT NULL,
    machines float8 NOT NULL,
    PRIMARY KEY (department, bucket, code)
);

CREATE FUNCTION department_occupied_hours(hours timestamptz[])
RETURNS TABLE (department text, bucket timestamptz, occupied float8) LANGUAGE sql STABLE AS $$
    SELECT s.department, r.bucket, coalesce(sum(r.occupied_n::float8 / NULLIF(r.users_n, 0)), 0)
    FROM usage_hourly_rollup r JOIN systems s ON s.id = r.system_id
    WHERE r.bucket = ANY (hours) AND s.department IS NOT NULL
    GROUP BY 1, 2
$$;

CREATE FUNCTION department_seat_hours(hours timestamptz[])
RETURNS TABLE (department text, bucket timestamptz, code smallint, machines float8) LANGUAGE sql STABLE AS $$
    WITH per AS (SELECT system_id, bucket, code, samples FROM seat_hourly_rollup WHERE bucket = ANY (hours)),
    total AS (SELECT system_id, bucket, sum(samples) AS n FROM per GROUP BY 1, 2)
    SELECT s.department, per.bucket, per.code, sum(per.samples::float8 / total.n)
    FROM per JOIN total USING (system_id, bucket) JOIN systems s ON s.id = per.system_id
    WHERE s.department IS NOT NULL
    GROUP BY 1, 2, 3
$$;

CREATE FUNCTION seat_rollup_follow_usage_departments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT bucket) INTO hours FROM new_rows;
    IF hours IS NOT NULL THEN
        DELETE FROM department_hourly_rollup WHERE bucket = ANY (hours);
        INSERT INTO department_hourly_rollup SELECT * FROM department_occupied_hours(hours);
        DELETE FROM department_seat_hourly_rollup WHERE bucket = ANY (hours);
        INSERT INTO department_seat_hourly_rollup SELECT * FROM department_seat_hours(hours);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER seat_rollup_follow_usage_departments AFTER INSERT ON usage_hourly_rollup
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_rollup_follow_usage_departments();

CREATE VIEW department_hourly AS
    SELECT r.department, r.bucket, r.occupied FROM department_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT s.department, h.bucket, coalesce(sum(h.occupied_ratio), 0)
    FROM usage_hourly h JOIN systems s ON s.id = h.system_id
    WHERE h.bucket >= (SELECT min(bucket) FROM usage_rollup_dirty)  -- bounds as init plans: index
      AND h.bucket <= (SELECT max(bucket) FROM usage_rollup_dirty)  -- conditions, not a full scan
      AND h.bucket IN (SELECT bucket FROM usage_rollup_dirty) AND s.department IS NOT NULL
    GROUP BY 1, 2;

-- The live branch counts the dirty hours' raw seat samples once (seat_hour_counts, called through
-- LATERAL so the array is computed first); going through the seat_hourly view here planned nested
-- loops over every seat series and ran for seconds.
CREATE VIEW department_seat_hourly AS
    SELECT r.department, r.bucket, r.code, r.machines FROM department_seat_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT s.department, c.bucket, c.code, sum(c.samples::float8 / c.n)
    FROM (SELECT c.*, sum(c.samples) OVER (PARTITION BY c.system_id, c.bucket) AS n
          FROM (SELECT ARRAY(SELECT DISTINCT bucket FROM usage_rollup_dirty) AS hours) d,
               LATERAL seat_hour_counts(d.hours) c) c
    JOIN systems s ON s.id = c.system_id
    WHERE s.department IS NOT NULL
    GROUP BY 1, 2, 3;
