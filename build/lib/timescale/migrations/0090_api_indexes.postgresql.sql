-- Indexes the API's queries need beyond the core schema (owned by api/, see docs/api.md).
-- Department summaries read every machine's hourly rollups in a time range (/departments, default
-- the last 24 h): without this index that is a scan of the whole rollup table (250 machines x 30 days
-- = 180,000 rows) per request. Per-machine series use the primary key (system_id, bucket).
CREATE INDEX IF NOT EXISTS usage_hourly_rollup_bucket ON usage_hourly_rollup (bucket);
