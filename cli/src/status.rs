//! `bakehouse status`: per table its snapshots, rows, files and bytes; per hop its checkpoint
//! and how many source commits it is behind.

use anyhow::Result;
use bakehouse::adapters::iceberg::{ALL_TABLES, Lakehouse, TableDef};
use bakehouse::hops::to_gold::FACTS;
use bakehouse::hops::to_silver::SILVER;
use bakehouse::hops::{Deps, PROP_INGESTED_OBJECTS, PROP_KAFKA_OFFSETS};
use iceberg::table::Table;

fn summary_number(table: &Table, key: &str) -> u64 {
    Lakehouse::snapshot_property(table, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Prints the status tables.
pub async fn run(deps: &Deps) -> Result<()> {
    say!(
        "{:<36} {:>9} {:>10} {:>7} {:>12}",
        "table",
        "snapshots",
        "rows",
        "files",
        "bytes"
    );
    for def in ALL_TABLES {
        let table = deps.lake.load(&def).await?;
        say!(
            "{:<36} {:>9} {:>10} {:>7} {:>12}",
            def.qualified(),
            table.metadata().snapshots().len(),
            summary_number(&table, "total-records"),
            summary_number(&table, "total-data-files"),
            summary_number(&table, "total-files-size"),
        );
    }
    say!();
    say!(
        "{:<40} {:<28} {:>10} {:>8} {:>7}",
        "hop",
        "source",
        "processed",
        "source",
        "behind"
    );

    for (target, source) in SILVER.iter().chain(FACTS.iter()) {
        hop_line(deps, target, source).await?;
    }
    say!();
    for def in ALL_TABLES.iter().filter(|d| d.namespace == "bronze") {
        let table = deps.lake.load(def).await?;
        let offsets = Lakehouse::snapshot_property(&table, PROP_KAFKA_OFFSETS)
            .unwrap_or("{}")
            .to_string();
        let objects = Lakehouse::snapshot_property(&table, PROP_INGESTED_OBJECTS)
            .map_or(0, |v| v.split(',').filter(|d| !d.is_empty()).count());
        say!(
            "{:<36} objects ingested: {objects:<5} kafka offsets: {offsets}",
            def.qualified()
        );
    }
    Ok(())
}

async fn hop_line(deps: &Deps, target: &TableDef, source: &TableDef) -> Result<()> {
    let target_table = deps.lake.load(target).await?;
    let source_table = deps.lake.load(source).await?;
    let processed = bakehouse::hops::checkpoint(&target_table);
    let head = source_table
        .metadata()
        .current_snapshot()
        .map_or(0, |s| s.sequence_number());
    let behind = source_table
        .metadata()
        .snapshots()
        .filter(|s| s.sequence_number() > processed)
        .count();
    say!(
        "{:<40} {:<28} {:>10} {:>8} {:>7}",
        format!("{} → {}", source.qualified(), target.qualified()),
        source.qualified(),
        processed,
        head,
        behind
    );
    Ok(())
}
