-- Plain mode only (0099.postgresql reads the dirty hours' raw rows through pruned functions);
-- TimescaleDB's continuous aggregates answer unmaterialised buckets themselves.
SELECT 1;
