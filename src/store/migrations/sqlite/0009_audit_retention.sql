-- Audit retention (src/audit): the entries through a horizon may be removed, with the checkpoints before
-- it; the checkpoint at the horizon stays, the signed anchor of what remains. The horizon only moves
-- forward, and each move is itself an audit entry (`audit.prune`).
CREATE TABLE audit_horizon (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TRIGGER audit_horizon_append_only_update BEFORE UPDATE ON audit_horizon
BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward'); END;
CREATE TRIGGER audit_horizon_append_only_delete BEFORE DELETE ON audit_horizon
BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward'); END;

DROP TRIGGER audit_log_append_only_delete;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
WHEN OLD.seq IS NULL OR OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_horizon)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

DROP TRIGGER audit_checkpoint_append_only_delete;
CREATE TRIGGER audit_checkpoint_append_only_delete BEFORE DELETE ON audit_checkpoint
WHEN OLD.seq >= (SELECT COALESCE(MAX(seq), 0) FROM audit_horizon)
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
