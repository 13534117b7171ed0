-- Plain mode only (0098.postgresql rewrites usage_daily's dirty-day branch); TimescaleDB's
-- continuous aggregate answers unmaterialised buckets itself.
SELECT 1;
