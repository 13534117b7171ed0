-- Repair usage values the bridge stored before it checked them (issue #11): ±Inf, NaN, 1e308 and
-- negative percentages made the API's averages overflow (HTTP 500) and reach JSON as NaN/Infinity,
-- and made optilab_refresh_rollups() fail on the hours holding them. Such values become NULL (a
-- column the sample did not carry), and the hours they were in are marked for the rollups.
-- `x NOT BETWEEN 0 AND 100` is true for NaN and ±Inf too (NaN sorts above every number).

WITH repaired AS (
    UPDATE usage_metrics SET
        cpu_usage  = CASE WHEN cpu_usage  BETWEEN 0 AND 100 THEN cpu_usage END,
        ram_usage  = CASE WHEN ram_usage  BETWEEN 0 AND 100 THEN ram_usage END,
        disk_usage = CASE WHEN disk_usage BETWEEN 0 AND 100 THEN disk_usage END
    WHERE cpu_usage NOT BETWEEN 0 AND 100 OR ram_usage NOT BETWEEN 0 AND 100
       OR disk_usage NOT BETWEEN 0 AND 100
    RETURNING timestamp
)
INSERT INTO usage_rollup_dirty (bucket)
SELECT DISTINCT date_bin(INTERVAL '1 hour', timestamp, TIMESTAMPTZ '2000-01-01 00:00+00') FROM repaired;

-- The rollup rows already computed from them (a sum of Inf is Inf) are recomputed from the dirty
-- marks above by the bridge's next maintenance pass.
