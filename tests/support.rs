//! Shared by the integration tests: a fresh database on the PostgreSQL server `make test` starts.

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
