-- Scale-out: the change log replicas and peers follow, store-wide settings, source leases, sync state and
-- replica heartbeats.

-- Everything that changed what the catalog shows. Writers insert entries without a seq; a sequencer
-- numbers committed entries afterwards, one sequencer at a time, so an entry that commits late gets a
-- later seq (see src/store/changes.rs).
CREATE SEQUENCE change_log_seq;
CREATE TABLE change_log (
    id BIGSERIAL PRIMARY KEY,
    seq BIGINT UNIQUE,
    -- 'registry' (registered models) or 'hf' (a Hub source's mirrored repos).
    domain TEXT NOT NULL,
    -- The hf source; '' for the registry.
    source_id TEXT NOT NULL,
    -- The catalog name that changed (a registered model's name, a repo id); '*' for everything in the
    -- domain or source; NULL for a source-level change (a sync's status).
    name TEXT,
    -- The registered model id, for registry changes.
    entity_id BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX change_log_at ON change_log (at);
CREATE INDEX change_log_unsequenced ON change_log (id) WHERE seq IS NULL;

-- Store-wide values: the log epoch, how far the log was pruned.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One holder at a time per lease; fence grows with every change of holder.
CREATE TABLE lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The last sync of each external source, whichever replica ran it.
-- A sync started after the last one finished was interrupted: the next holder syncs at once.
CREATE TABLE source_sync (
    source_id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    report TEXT NOT NULL
);

-- Live replicas and the log position each has applied.
CREATE TABLE replica (
    id TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
