-- Federation: records taken from peer registries, and where each peer source's change feed stands.

-- One row per record a peer source holds, keyed by the source, the peer's source it came from and its
-- name. `record` is the normalized catalog record (JSON) with its origin chain in its properties; `hash`
-- (hex) tells an unchanged record apart without reading it.
CREATE TABLE peer_record (
    source_id TEXT NOT NULL,
    peer_source TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (source_id, peer_source, name)
);
-- The change log names records by source and name only.
CREATE INDEX peer_record_name ON peer_record (source_id, name);

-- The feed cursor of each `modelcat` peer source: a restart resumes here.
CREATE TABLE peer_cursor (
    source_id TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
