-- Audit retention (src/audit): the entries through a horizon may be removed, with the checkpoints before
-- it; the checkpoint at the horizon stays, the signed anchor of what remains. The horizon only moves
-- forward, and each move is itself an audit entry (`audit.prune`).
CREATE TABLE audit_horizon (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_log' AND OLD.hash IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log' AND OLD.seq IS NOT NULL
        AND OLD.seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit_horizon) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_checkpoint'
        AND OLD.seq < (SELECT COALESCE(MAX(seq), 0) FROM audit_horizon) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_horizon_append_only BEFORE UPDATE OR DELETE ON audit_horizon
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
