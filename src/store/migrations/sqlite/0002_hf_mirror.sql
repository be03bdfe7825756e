-- The Hugging Face mirror: raw Hub documents, the repos each source mirrors, and mirrored file contents.
CREATE TABLE hf_repo (
    repo_id TEXT PRIMARY KEY,
    sha TEXT NOT NULL,
    last_modified TEXT,
    -- The Hub's model_info document (blobs=true), served verbatim apart from projections.
    info TEXT NOT NULL,
    -- The Hub's refs document.
    refs TEXT NOT NULL,
    synced_at BIGINT NOT NULL
);

CREATE TABLE hf_source_repo (
    source_id TEXT NOT NULL,
    repo_id TEXT NOT NULL REFERENCES hf_repo (repo_id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, repo_id)
);
CREATE INDEX hf_source_repo_repo ON hf_source_repo (repo_id);

-- Whole small files, or the leading bytes (the header) of a safetensors file.
CREATE TABLE hf_file (
    repo_id TEXT NOT NULL REFERENCES hf_repo (repo_id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (repo_id, path)
);
