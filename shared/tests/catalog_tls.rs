//! The PostgreSQL catalog over TLS, on the server `make test` starts (it offers TLS with a
//! certificate signed by its own CA, `BAKEHOUSE_TEST_POSTGRES_CA`): verified when the URL names
//! the CA, on by default, and refused with a message naming the fix when the certificate cannot
//! be verified.

#![allow(clippy::unwrap_used)]

mod support;

use bakehouse::adapters::lakehouse::Lakehouse;
use bakehouse::config::{Config, Overrides};
use bakehouse::error::StorageError;

fn config(dir: &std::path::Path, catalog: String) -> Config {
    let overrides = Overrides {
        warehouse: Some(format!("file://{}/warehouse", dir.display())),
        catalog: Some(catalog),
    };
    Config::from_lookup(&overrides, |_| None).unwrap()
}

/// Whether each server connection of `application` speaks TLS, as the server sees it.
async fn tls_of_connections(application: &str) -> Vec<bool> {
    let server = std::env::var("BAKEHOUSE_TEST_POSTGRES").unwrap();
    let admin = sqlx::AnyPool::connect(&server).await.unwrap();
    let rows: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_all(&admin)
    .await
    .unwrap();
    rows.into_iter().map(|(ssl,)| ssl).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_speaks_tls_verified_by_the_ca_its_url_names_and_by_default() {
    let Some(database) = support::TempDatabase::create().await else {
        return;
    };
    let Ok(ca) = std::env::var("BAKEHOUSE_TEST_POSTGRES_CA") else {
        assert!(std::env::var("CI").is_err(), "CI must run the TLS test");
        eprintln!("BAKEHOUSE_TEST_POSTGRES_CA is not set: `make test` sets it");
        database.drop().await;
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (case, settings, tls) in [
        (
            "verified",
            format!("&sslmode=verify-full&sslrootcert={ca}"),
            true,
        ),
        ("default", String::new(), true),
        ("disabled", "&sslmode=disable".to_string(), false),
    ] {
        let application = format!("bakehouse-tls-{case}-{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}?application_name={application}{settings}", database.url);
        let lake = Lakehouse::open(&config(dir.path(), url)).await.unwrap();
        lake.create_tables().await.unwrap();
        let connections = tls_of_connections(&application).await;
        assert!(!connections.is_empty(), "{case}: no connection seen");
        assert!(
            connections.iter().all(|&ssl| ssl == tls),
            "{case}: TLS per connection {connections:?}, expected all {tls}"
        );
        drop(lake);
    }
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_roots_cannot_verify_is_refused_naming_the_fix() {
    let Some(database) = support::TempDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The cluster's CA is not among the public roots `verify-full` trusts without `sslrootcert`.
    let url = format!("{}?sslmode=verify-full", database.url);
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_string();
    let error = Lakehouse::open(&config(dir.path(), url))
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(matches!(error, StorageError::Tls { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(
        message.contains("certificate") && message.contains("sslrootcert="),
        "{message}"
    );
    assert!(message.contains("bakehouse:***@127.0.0.1"), "{message}");
    assert!(!message.contains(&password), "{message}");
    database.drop().await;
}
