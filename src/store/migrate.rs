//! Schema migrations, one ordered set per backend, applied at start.
//!
//! Each backend keeps its DDL under `migrations/<backend>/` and records applied versions in
//! `modelcat_migrations`. A migration runs in one transaction together with its bookkeeping row, so a
//! failed migration leaves the database at the previous version. Migrations are append-only: never edit
//! one that has shipped; add the next version instead.

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Migrations for SQLite, in order.
pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "registry", sql: include_str!("migrations/sqlite/0001_registry.sql") },
    Migration { version: 2, name: "hf_mirror", sql: include_str!("migrations/sqlite/0002_hf_mirror.sql") },
    Migration { version: 3, name: "replication", sql: include_str!("migrations/sqlite/0003_replication.sql") },
    Migration { version: 4, name: "federation", sql: include_str!("migrations/sqlite/0004_federation.sql") },
    Migration { version: 5, name: "auth", sql: include_str!("migrations/sqlite/0005_auth.sql") },
    Migration { version: 6, name: "change_log_key", sql: include_str!("migrations/sqlite/0006_change_log_key.sql") },
    Migration { version: 7, name: "audit", sql: include_str!("migrations/sqlite/0007_audit.sql") },
    Migration {
        version: 8,
        name: "model_permissions",
        sql: include_str!("migrations/sqlite/0008_model_permissions.sql"),
    },
    Migration { version: 9, name: "audit_retention", sql: include_str!("migrations/sqlite/0009_audit_retention.sql") },
    Migration { version: 10, name: "governance", sql: include_str!("migrations/sqlite/0010_governance.sql") },
    Migration { version: 11, name: "webhooks", sql: include_str!("migrations/sqlite/0011_webhooks.sql") },
    Migration {
        version: 12,
        name: "policies_evaluations_signatures",
        sql: include_str!("migrations/sqlite/0012_policies_evaluations_signatures.sql"),
    },
    Migration { version: 13, name: "deployments", sql: include_str!("migrations/sqlite/0013_deployments.sql") },
    Migration { version: 14, name: "catalog_events", sql: include_str!("migrations/sqlite/0014_catalog_events.sql") },
];

/// Migrations for PostgreSQL, in order.
pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "registry", sql: include_str!("migrations/postgres/0001_registry.sql") },
    Migration { version: 2, name: "hf_mirror", sql: include_str!("migrations/postgres/0002_hf_mirror.sql") },
    Migration { version: 3, name: "replication", sql: include_str!("migrations/postgres/0003_replication.sql") },
    Migration { version: 4, name: "federation", sql: include_str!("migrations/postgres/0004_federation.sql") },
    Migration { version: 5, name: "auth", sql: include_str!("migrations/postgres/0005_auth.sql") },
    Migration { version: 6, name: "change_log_key", sql: include_str!("migrations/postgres/0006_change_log_key.sql") },
    Migration { version: 7, name: "audit", sql: include_str!("migrations/postgres/0007_audit.sql") },
    Migration {
        version: 8,
        name: "model_permissions",
        sql: include_str!("migrations/postgres/0008_model_permissions.sql"),
    },
    Migration {
        version: 9,
        name: "audit_retention",
        sql: include_str!("migrations/postgres/0009_audit_retention.sql"),
    },
    Migration { version: 10, name: "governance", sql: include_str!("migrations/postgres/0010_governance.sql") },
    Migration { version: 11, name: "webhooks", sql: include_str!("migrations/postgres/0011_webhooks.sql") },
    Migration {
        version: 12,
        name: "policies_evaluations_signatures",
        sql: include_str!("migrations/postgres/0012_policies_evaluations_signatures.sql"),
    },
    Migration { version: 13, name: "deployments", sql: include_str!("migrations/postgres/0013_deployments.sql") },
    Migration { version: 14, name: "catalog_events", sql: include_str!("migrations/postgres/0014_catalog_events.sql") },
];

/// Creates the bookkeeping table; portable across both backends.
pub const CREATE_BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS modelcat_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Returns the migrations not yet in `applied`, in order.
pub fn pending<'a>(all: &'a [Migration], applied: &[i64]) -> impl Iterator<Item = &'a Migration> {
    all.iter().filter(move |migration| !applied.contains(&migration.version))
}
