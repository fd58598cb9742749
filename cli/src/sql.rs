//! `bakehouse sql "…"`: SQL over the catalog's tables, with DataFusion.

use std::sync::Arc;

use anyhow::{Result, bail};
use bakehouse::adapters::lakehouse::ALL_TABLES;
use bakehouse::config::CATALOG_NAME;
use bakehouse::hops::Deps;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::context::{SessionConfig, SessionContext};
use iceberg_datafusion::IcebergCatalogProvider;

/// A session where `bronze.x`, `silver.x` and `gold.x` name the lakehouse's tables (an
/// unqualified name is looked up in `gold`), with `SHOW TABLES` and `information_schema`.
pub async fn session(deps: &Deps) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, "gold")
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let provider = IcebergCatalogProvider::try_new(deps.lake.catalog()).await?;
    ctx.register_catalog(CATALOG_NAME, Arc::new(provider));
    Ok(ctx)
}

/// Runs a query and returns its batches. A table that does not exist is named with the
/// tables it could mean.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let frame = match ctx.sql(sql).await {
        Ok(frame) => frame,
        Err(e) => match unknown_table(&e.to_string()) {
            Some(message) => bail!(message),
            None => return Err(e.into()),
        },
    };
    Ok(frame.collect().await?)
}

/// For DataFusion's "table '…' not found": which tables the name could mean.
fn unknown_table(error: &str) -> Option<String> {
    let (_, rest) = error.split_once("table '")?;
    let (name, _) = rest.split_once("' not found")?;
    let wanted = name.rsplit('.').next().unwrap_or(name).to_lowercase();
    let candidates: Vec<String> = ALL_TABLES
        .iter()
        .filter(|t| t.name.contains(&wanted) || wanted.contains(t.name))
        .map(|t| t.qualified())
        .collect();
    let hint = if candidates.is_empty() {
        "`SHOW TABLES` lists them".to_string()
    } else {
        format!("did you mean {}?", candidates.join(", "))
    };
    Some(format!(
        "no table {name} (an unqualified name is looked up in gold; qualify it with bronze., silver. or gold.): {hint}"
    ))
}

/// Runs a query and prints the result as a table.
pub async fn run(deps: &Deps, sql: &str) -> Result<()> {
    let ctx = session(deps).await?;
    say!("{}", pretty_format_batches(&query(&ctx, sql).await?)?);
    Ok(())
}
