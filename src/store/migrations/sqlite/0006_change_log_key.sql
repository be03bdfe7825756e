-- Compaction (src/store/changes.rs) finds the older entries a new entry supersedes by this key.
CREATE INDEX change_log_key ON change_log (domain, source_id, COALESCE(name, ''), COALESCE(entity_id, -1), seq);
