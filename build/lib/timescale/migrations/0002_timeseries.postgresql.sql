-- Plain PostgreSQL: the time-series tables are range-partitioned by day, so retention is a cheap
-- DROP of whole partitions and time-range queries prune to the days they touch.  The bridge's
-- maintenance job (timescale/maintenance.py) creates partitions ahead and drops expired ones.

CREATE FUNCTION storage_mode() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'postgresql'::text $$;

CREATE TABLE usage_metrics (
    system_id       int NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    timestamp       timestamptz NOT NULL,
    cpu_usage       float8,
    ram_usage       float8,
    disk_usage      float8,
    logged_in_users int,
    PRIMARY KEY (system_id, timestamp)
) PARTITION BY RANGE (timestamp);
-- Rows arrive in time order, so a BRIN index serves "all systems in this range" at almost no cost.
CREATE INDEX usage_metrics_time_brin ON usage_metrics USING brin (timestamp);

-- No foreign key to series: it would cost an index probe per sample on the hottest insert path,
-- and series rows are never deleted.
CREATE TABLE samples (
    series_id bigint NOT NULL,
    timestamp timestamptz NOT NULL,
    value     float8 NOT NULL,
    PRIMARY KEY (series_id, timestamp)
) PARTITION BY RANGE (timestamp);

-- Daily partitions named <table>_pYYYYMMDD for every day in [first_day, last_day].
-- Serialised by an advisory lock so concurrent bridge threads cannot race on CREATE TABLE.
CREATE FUNCTION optilab_ensure_partitions(first_day date, last_day date) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    parent  text;
    day     date;
    created int := 0;
    part    text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('optilab_partitions'));
    FOREACH parent IN ARRAY ARRAY['usage_metrics', 'samples'] LOOP
        day := first_day;
        WHILE day <= last_day LOOP
            part := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(part) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               part, parent, day::timestamp AT TIME ZONE 'UTC',
                               (day + 1)::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- Retention: drop the daily partitions that end at or before `cutoff`; returns how many.
CREATE FUNCTION optilab_drop_partitions(cutoff timestamptz) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    part    record;
    dropped int := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('optilab_partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('usage_metrics'::regclass, 'samples'::regclass)
          AND c.relname ~ '_p[0-9]{8}$'
          AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;
