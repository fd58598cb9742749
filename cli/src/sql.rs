//! `bakehouse sql "…"`: SQL over the catalog's tables, with DataFusion.

use std::sync::Arc;

use anyhow::Result;
use bakehouse::config::CATALOG_NAME;
use bakehouse::hops::Deps;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::context::{SessionConfig, SessionContext};
use iceberg_datafusion::IcebergCatalogProvider;

/// A session where `bronze.x`, `silver.x` and `gold.x` name the lakehouse's tables.
pub async fn session(deps: &Deps) -> Result<SessionContext> {
    let config = SessionConfig::new().with_default_catalog_and_schema(CATALOG_NAME, "gold");
    let ctx = SessionContext::new_with_config(config);
    let provider = IcebergCatalogProvider::try_new(deps.lake.catalog()).await?;
    ctx.register_catalog(CATALOG_NAME, Arc::new(provider));
    Ok(ctx)
}

/// Runs a query and returns its batches.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Runs a query and prints the result as a table.
pub async fn run(deps: &Deps, sql: &str) -> Result<()> {
    let ctx = session(deps).await?;
    say!("{}", pretty_format_batches(&query(&ctx, sql).await?)?);
    Ok(())
}
