-- Least privilege: nothing to change in TimescaleDB mode. Chunks are created by TimescaleDB on
-- insert (the writer needs only INSERT on the hypertable; chunks inherit its grants), and
-- compression, retention and aggregate refresh are background jobs owned by the owner role.
-- The plain-mode variant makes the partition and rollup functions SECURITY DEFINER.
SELECT 1;
