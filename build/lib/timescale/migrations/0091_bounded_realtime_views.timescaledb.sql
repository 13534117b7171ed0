-- Plain-mode view fix only (see the .postgresql.sql variant); continuous aggregates need nothing.
SELECT 1;
