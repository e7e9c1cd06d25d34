-- The lifecycle of records: disputes, the flags they put on records and the outbox of notices
-- to peers, as small values by key within a space (the same key spaces as on sled).
CREATE TABLE node_state (
    space text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (space, key)
);

-- The retention purge finds expired inquiries by time.
CREATE INDEX inquiries_by_time ON inquiries (time_micros);
