-- Per department and hour (issue 15's reports), TimescaleDB mode: the same columns as plain mode's
-- rollup views, computed from usage_hourly (a continuous aggregate) and seat_hourly on every read.
CREATE VIEW department_hourly AS
    SELECT s.department, h.bucket, coalesce(sum(h.occupied_ratio), 0)::float8 AS occupied
    FROM usage_hourly h JOIN systems s ON s.id = h.system_id
    WHERE s.department IS NOT NULL
    GROUP BY 1, 2;

CREATE VIEW department_seat_hourly AS
    WITH total AS (SELECT system_id, bucket, sum(samples) AS n FROM seat_hourly GROUP BY 1, 2)
    SELECT s.department, per.bucket, per.code, sum(per.samples::float8 / total.n)::float8 AS machines
    FROM seat_hourly per JOIN total USING (system_id, bucket) JOIN systems s ON s.id = per.system_id
    WHERE s.department IS NOT NULL
    GROUP BY 1, 2, 3;
