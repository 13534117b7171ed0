-- Seat states per machine and hour (issue 15), plain-PostgreSQL mode: a rollup kept in step with
-- usage_hourly's. optilab_refresh_rollups() (0003) recomputes the dirty hours of usage_hourly_rollup
-- in one INSERT; a statement trigger on that INSERT recomputes the same hours' seat counts from the
-- raw seat samples, so no other code has to know about this table. Hours still marked dirty are
-- answered live from raw samples by the seat_hourly view, bounded like 0091's views.
CREATE TABLE seat_hourly_rollup (
    system_id int NOT NULL,
    bucket timestamptz NOT NULL,
    code smallint NOT NULL,
    samples int NOT NULL,
    PRIMARY KEY (system_id, bucket, code)
);
CREATE INDEX seat_hourly_rollup_bucket ON seat_hourly_rollup (bucket);

CREATE FUNCTION seat_hour_counts(hours timestamptz[])
RETURNS TABLE (system_id int, bucket timestamptz, code smallint, samples int) LANGUAGE sql STABLE AS $$
    SELECT ss.system_id, date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00'),
           sm.value::smallint, count(*)::int
    FROM seat_series ss JOIN samples sm ON sm.series_id = ss.series_id
    WHERE sm.timestamp >= (SELECT min(h) FROM unnest(hours) AS h)
      AND sm.timestamp < (SELECT max(h) FROM unnest(hours) AS h) + INTERVAL '1 hour'
      AND date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00') = ANY (hours)
    GROUP BY 1, 2, 3
$$;

CREATE FUNCTION seat_rollup_follow_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT bucket) INTO hours FROM new_rows;
    IF hours IS NOT NULL THEN
        DELETE FROM seat_hourly_rollup WHERE bucket = ANY (hours);
        INSERT INTO seat_hourly_rollup SELECT * FROM seat_hour_counts(hours);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER seat_rollup_follow_usage AFTER INSERT ON usage_hourly_rollup
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_rollup_follow_usage();

CREATE VIEW seat_hourly AS
    SELECT r.system_id, r.bucket, r.code, r.samples FROM seat_hourly_rollup r
    WHERE r.bucket NOT IN (SELECT bucket FROM usage_rollup_dirty)
    UNION ALL
    SELECT ss.system_id, date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00'),
           sm.value::smallint, count(*)::int
    FROM seat_series ss JOIN samples sm ON sm.series_id = ss.series_id
    WHERE sm.timestamp >= (SELECT min(bucket) FROM usage_rollup_dirty)
      AND sm.timestamp < (SELECT max(bucket) FROM usage_rollup_dirty) + INTERVAL '1 hour'
      AND date_bin(INTERVAL '1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01 00:00+00')
          IN (SELECT bucket FROM usage_rollup_dirty)
    GROUP BY 1, 2, 3;
