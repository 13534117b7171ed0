-- Least privilege (optilab-migrate --roles, docs/storage.md "Database roles"): the bridge connects as
-- a writer that may insert and update rows but owns nothing, so it cannot run DDL. The upkeep it
-- triggers in plain mode is DDL (CREATE TABLE ... PARTITION OF, DROP TABLE of expired days) or
-- deletes (the rollup refresh), so those three functions run with their owner's rights (SECURITY
-- DEFINER, with a fixed search_path so a caller cannot slip in objects of its own), and only roles
-- granted EXECUTE may call them: nobody else, not the read-only role. Partitions they create belong
-- to the owner, so the owner's default privileges give the writer and the reader theirs.

ALTER FUNCTION optilab_ensure_partitions(date, date) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION optilab_drop_partitions(timestamptz) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION optilab_refresh_rollups() SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION optilab_ensure_partitions(date, date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION optilab_drop_partitions(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION optilab_refresh_rollups() FROM PUBLIC;
