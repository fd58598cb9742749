//! Shared by the integration tests: a fresh database on the PostgreSQL server `make test`
//! starts, and AWS-shaped event documents.

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

use serde_json::{Value, json};

/// Percent-encodes an S3 key as notifications carry it (spaces as `+`).
pub fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An S3 ObjectCreated notification of `s3://bucket/key`.
pub fn s3_event(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-25T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "test"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "landing",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "test"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encode_key(key)}}
    }]})
}
