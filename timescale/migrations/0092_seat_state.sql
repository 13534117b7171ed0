-- Seat state history (issue 15), both storage modes. The exporter's optilab_seat_state{state} family
-- (1 for the current state) reaches the bridge by remote write; remote_write_bridge/mapping.py folds
-- the six series of a machine into one series `optilab_seat_state{instance}` whose value is the
-- state's code below, one sample per scrape, stored in `samples` like every allow-listed series.
-- The view names it per system; the codes are fixed (exporter/parsers_seat.py STATES, in order).
CREATE TABLE IF NOT EXISTS seat_states (
    code smallint PRIMARY KEY,
    state text UNIQUE NOT NULL,
    occupied boolean NOT NULL
);
INSERT INTO seat_states (code, state, occupied) VALUES
    (0, 'free', false), (1, 'in_use', true), (2, 'idle', true), (3, 'locked', true),
    (4, 'offline', false), (5, 'maintenance', false)
ON CONFLICT (code) DO NOTHING;

-- One series per machine: found by its instance label without scanning every series.
CREATE INDEX IF NOT EXISTS series_seat_instance ON series ((labels ->> 'instance'))
    WHERE metric = 'optilab_seat_state';

CREATE OR REPLACE VIEW seat_series AS
SELECT sy.id AS system_id, se.id AS series_id
FROM series se JOIN systems sy ON sy.instance = se.labels ->> 'instance'
WHERE se.metric = 'optilab_seat_state';

CREATE OR REPLACE VIEW seat_history AS
SELECT ss.system_id, sm.timestamp, sm.value::smallint AS code, st.state, st.occupied
FROM seat_series ss
JOIN samples sm ON sm.series_id = ss.series_id
JOIN seat_states st ON st.code = sm.value::smallint;
