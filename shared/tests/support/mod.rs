//! Shared by the integration tests: a fresh database on the PostgreSQL server `make test`
//! starts, AWS-shaped event documents, and quarantine rows to commit.

#![allow(clippy::unwrap_used, dead_code)]

/// A database created for one test on `BAKEHOUSE_TEST_POSTGRES`; [`TempDatabase::drop`]
/// removes it.
pub struct TempDatabase {
    pub url: String,
    admin: sqlx::AnyPool,
    name: String,
}

impl TempDatabase {
    /// `None` (the test skips) when the server is not configured, outside CI.
    pub async fn create() -> Option<TempDatabase> {
        let Ok(server) = std::env::var("BAKEHOUSE_TEST_POSTGRES") else {
            eprintln!(
                "BAKEHOUSE_TEST_POSTGRES is not set: `make test` starts PostgreSQL and sets it"
            );
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL tests"
            );
            return None;
        };
        let name = format!("bakehouse_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
        Some(TempDatabase { url, admin, name })
    }

    pub async fn drop(self) {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}

use std::collections::HashMap;

use bakehouse::adapters::events::object_created_event;
use bakehouse::adapters::lakehouse::{
    CommitOutcome, CommitPlan, Lakehouse, Operation, tables::QUARANTINE,
};
use bakehouse::domain::records::QuarantineRow;
use bakehouse::domain::time::MICROS_PER_DAY;
use bakehouse::error::StorageError;
use serde_json::Value;

/// An S3 ObjectCreated notification of `s3://bucket/key`.
pub fn s3_event(bucket: &str, key: &str) -> Value {
    object_created_event(&[format!("s3://{bucket}/{key}")])
}

/// A quarantine row tagged `tag` (its `source_ref`) ingested on `day`.
pub fn row(tag: &str, day: i64) -> QuarantineRow {
    QuarantineRow {
        dataset: "sales-events".into(),
        source: "file".into(),
        source_ref: tag.into(),
        error_code: "not_json".into(),
        error_message: "test".into(),
        raw: tag.into(),
        raw_encoding: "text".into(),
        ingestion_time: day * MICROS_PER_DAY + 1,
    }
}

/// Appends one row per tag to `bronze.quarantine` in one commit.
pub async fn append(
    lake: &Lakehouse,
    tags: &[&str],
    day: i64,
) -> Result<Option<CommitOutcome>, StorageError> {
    let rows: Vec<QuarantineRow> = tags.iter().map(|t| row(t, day)).collect();
    append_rows(lake, &rows).await
}

/// Appends quarantine rows in one commit, as an ingest would have.
pub async fn append_rows(
    lake: &Lakehouse,
    rows: &[QuarantineRow],
) -> Result<Option<CommitOutcome>, StorageError> {
    lake.commit_with(&QUARANTINE, move |table| async move {
        let add = lake.write_rows(&table, rows).await?;
        Ok(Some(CommitPlan {
            operation: Operation::Append,
            add,
            add_rewritten: Vec::new(),
            remove: vec![],
            properties: HashMap::new(),
            keep_added_on_conflict: false,
            added_spec: None,
        }))
    })
    .await
}
