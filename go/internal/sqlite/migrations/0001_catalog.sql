-- One table per kind of record; each row keeps the record's JSON document
-- next to its id and its catalog-wide version.
CREATE TABLE version_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    v  INTEGER NOT NULL
);
INSERT INTO version_seq (id, v) VALUES (1, 0);

CREATE TABLE shops (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE products (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE descriptions (
    id      INTEGER PRIMARY KEY REFERENCES products (id),
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE specs (
    id      INTEGER PRIMARY KEY REFERENCES products (id),
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE prices (
    id      INTEGER PRIMARY KEY REFERENCES products (id),
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE stock (
    id      INTEGER PRIMARY KEY REFERENCES products (id),
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

CREATE TABLE recommendations (
    id      INTEGER PRIMARY KEY REFERENCES products (id),
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
);

-- The transactional outbox: written in the same transaction as the edit,
-- published by the relay, marked sent only after the broker acknowledged.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
);
