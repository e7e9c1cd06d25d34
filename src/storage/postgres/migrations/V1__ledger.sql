-- The ledger: records under their version rules, inquiries, and the audit log with its Merkle
-- subtree hashes. Text keys use the "C" collation so listings sort by bytes, as on sled.

-- One row per (furnisher, record id), live or a tombstone that keeps stale re-sends out.
CREATE TABLE records (
    furnisher      text COLLATE "C" NOT NULL,
    record_id      text COLLATE "C" NOT NULL,
    subject_id     text COLLATE "C" NOT NULL,
    version        bigint NOT NULL CHECK (version > 0),
    live           boolean NOT NULL,
    body           bytea NOT NULL,          -- the stored protobuf form of the record
    updated_micros bigint NOT NULL,
    deletion_reason text NOT NULL DEFAULT '',
    deletion_note  text NOT NULL DEFAULT '',
    PRIMARY KEY (furnisher, record_id)
);
CREATE INDEX records_by_subject ON records (subject_id, furnisher, record_id) WHERE live;

CREATE TABLE inquiries (
    subject_id  text COLLATE "C" NOT NULL,
    time_micros bigint NOT NULL,
    query_id    text COLLATE "C" NOT NULL,
    body        bytea NOT NULL,             -- the protobuf form of the inquiry
    PRIMARY KEY (subject_id, time_micros, query_id)
);

-- The log: leaf bytes by index, and every complete subtree hash by (level, index).
CREATE TABLE audit_entries (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    leaf bytea NOT NULL
);
CREATE TABLE audit_nodes (
    level smallint NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- The coordination row: every write takes it FOR UPDATE, so the processes sharing this
-- database append to one gap-free, fork-free log. `root` is the root at `size`.
CREATE TABLE log_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    size bigint NOT NULL CHECK (size >= 0),
    root bytea NOT NULL CHECK (length(root) = 32)
);
INSERT INTO log_head (one, size, root)
VALUES (true, 0, decode('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'));
