-- Seat states per machine and hour (issue 15), TimescaleDB mode: the same columns as plain mode's
-- rollup view, computed from the raw seat samples (a continuous aggregate cannot join series to
-- systems; a rollup job is future work — docs/api.md says what this costs).
CREATE VIEW seat_hourly AS
    SELECT ss.system_id, time_bucket(INTERVAL '1 hour', sm.timestamp) AS bucket, sm.value::smallint AS code,
           count(*)::int AS samples
    FROM seat_series ss JOIN samples sm ON sm.series_id = ss.series_id
    GROUP BY 1, 2, 3;
