-- Repair usage values the bridge stored before it checked them (issue #11): ±Inf, NaN, 1e308 and
-- negative percentages made the API's averages overflow (HTTP 500) and reach JSON as NaN/Infinity,
-- and made continuous-aggregate refreshes fail on the buckets holding them. Such values become NULL
-- (a column the sample did not carry). The UPDATE invalidates the affected buckets; the refresh
-- policies recompute those inside their windows (3 / 7 days), older buckets keep their values
-- (the API answers a non-finite aggregate as null). On compressed chunks TimescaleDB (2.11+)
-- decompresses what it scans: on a large history this migration takes a while, once.

UPDATE usage_metrics SET
    cpu_usage  = CASE WHEN cpu_usage  BETWEEN 0 AND 100 THEN cpu_usage END,
    ram_usage  = CASE WHEN ram_usage  BETWEEN 0 AND 100 THEN ram_usage END,
    disk_usage = CASE WHEN disk_usage BETWEEN 0 AND 100 THEN disk_usage END
WHERE cpu_usage NOT BETWEEN 0 AND 100 OR ram_usage NOT BETWEEN 0 AND 100
   OR disk_usage NOT BETWEEN 0 AND 100;
