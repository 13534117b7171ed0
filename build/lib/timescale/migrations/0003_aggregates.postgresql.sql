-- Plain PostgreSQL stand-in for continuous aggregates with real-time aggregation.
--
-- Rollup tables keep sums and counts (not averages) so a day is exactly the sum of its hours.
-- Every write transaction of the bridge inserts the hour buckets it touched into usage_rollup_dirty
-- (plain INSERT, no upsert: no row lock that would serialise concurrent writers).
-- optilab_refresh_rollups() deletes the marks it can see and recomputes those hours and their days;
-- a mark committed after that DELETE survives for the next run, so no change is ever missed.
-- The views answer clean buckets from the rollups and dirty ones from raw rows, like TimescaleDB's
-- real-time aggregates, with the same columns as the TimescaleDB mode.

CREATE TABLE usage_hourly_rollup (
    system_id  int NOT NULL,
    bucket     timestamptz NOT NULL,
    cpu_sum    float8, cpu_n  bigint NOT NULL, cpu_max float8,
    ram_sum    float8, ram_n  bigint NOT NULL,
    disk_sum   float8, disk_n bigint NOT NULL,
    users_sum  float8, users_n bigint NOT NULL, occupied_n bigint NOT NULL,
    samples    bigint NOT NULL,
    PRIMARY KEY (system_id, bucket)
);
CREATE TABLE usage_daily_rollup (LIKE usage_hourly_rollup INCLUDING ALL);

CREATE TABLE usage_rollup_dirty (bucket timestamptz NOT NULL);
CREATE INDEX usage_rollup_dirty_bucket ON usage_rollup_dirty (bucket);

-- Sums of one hour per system computed from raw rows.
CREATE FUNCTION usage_hour_sums(hours timestamptz[])
RETURNS SETOF usage_hourly_rollup LANGUAGE sql STABLE AS $$
    SELECT m.system_id, date_bin(INTERVAL '1 hour', m.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00'),
           sum(m.cpu_usage), count(m.cpu_usage), max(m.cpu_usage),
           sum(m.ram_usage), count(m.ram_usage),
           sum(m.disk_usage), count(m.disk_usage),
           sum(m.logged_in_users), count(m.logged_in_users), count(*) FILTER (WHERE m.logged_in_users > 0),
           count(*)
    FROM unnest(hours) AS h(bucket)
    JOIN usage_metrics m ON m.timestamp >= h.bucket AND m.timestamp < h.bucket + INTERVAL '1 hour'
    GROUP BY 1, 2
$$;

-- Hour sums of every bucket, fresh: rollup rows for clean hours, raw sums for dirty ones.
CREATE VIEW usage_hourly_sums AS
    SELECT r.* FROM usage_hourly_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM usage_rollup_dirty d WHERE d.bucket = r.bucket)
    UNION ALL
    SELECT s.* FROM (SELECT ARRAY(SELECT DISTINCT bucket FROM usage_rollup_dirty) AS hours) d, LATERAL usage_hour_sums(d.hours) s;  -- not f(ARRAY(subquery)): that blocks inlining, and the generic plan scans every raw row

CREATE VIEW usage_hourly AS
    SELECT system_id, bucket,
           cpu_sum / NULLIF(cpu_n, 0)       AS avg_cpu,
           cpu_max                          AS max_cpu,
           ram_sum / NULLIF(ram_n, 0)       AS avg_ram,
           disk_sum / NULLIF(disk_n, 0)     AS avg_disk,
           users_sum / NULLIF(users_n, 0)   AS avg_users,
           occupied_n::float8 / NULLIF(users_n, 0) AS occupied_ratio,
           samples
    FROM usage_hourly_sums;

CREATE VIEW usage_daily AS
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

-- Incremental, idempotent refresh; returns the number of hours recomputed.
CREATE FUNCTION optilab_refresh_rollups() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
    days  timestamptz[];
BEGIN
    -- Only one refresher at a time; writers are never blocked by this lock.
    IF NOT pg_try_advisory_xact_lock(hashtext('optilab_rollups')) THEN
        RETURN 0;
    END IF;
    WITH claimed AS (DELETE FROM usage_rollup_dirty RETURNING bucket)
    SELECT array_agg(DISTINCT bucket) INTO hours FROM claimed;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    -- A new statement sees every write whose mark the DELETE above removed.
    DELETE FROM usage_hourly_rollup WHERE bucket = ANY (hours);
    INSERT INTO usage_hourly_rollup SELECT * FROM usage_hour_sums(hours);

    days := ARRAY(SELECT DISTINCT date_bin(INTERVAL '1 day', h, TIMESTAMPTZ '2000-01-01 00:00+00')
                  FROM unnest(hours) AS h);
    DELETE FROM usage_daily_rollup WHERE bucket = ANY (days);
    INSERT INTO usage_daily_rollup
    SELECT h.system_id, d.day, sum(h.cpu_sum), sum(h.cpu_n), max(h.cpu_max), sum(h.ram_sum),
           sum(h.ram_n), sum(h.disk_sum), sum(h.disk_n), sum(h.users_sum), sum(h.users_n),
           sum(h.occupied_n), sum(h.samples)
    FROM unnest(days) AS d(day)
    JOIN usage_hourly_rollup h ON h.bucket >= d.day AND h.bucket < d.day + INTERVAL '1 day'
    GROUP BY h.system_id, d.day;
    RETURN cardinality(hours);
END $$;
