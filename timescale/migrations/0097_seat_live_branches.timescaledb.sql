-- Plain mode only: the live branches over raw seat samples (0097.postgresql) do not exist here.
SELECT 1;
