-- Indexes the API's queries need beyond the core schema (owned by api/, see docs/api.md).
-- Nothing to add in TimescaleDB mode: a continuous aggregate's materialization hypertable is indexed
-- on its time column (bucket) and on (system_id, bucket) by TimescaleDB itself.
SELECT 1;
