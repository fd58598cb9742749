//! `bakehouse demo`: the whole pipeline embedded on a generated day — init, ingest in four
//! batches with processing after each (as the triggers would), a redelivered batch,
//! maintenance, and a summary read back with SQL.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::now_micros;
use bakehouse::hops::{Deps, maintenance};
use bakehouse_simulate::{DayPlan, generate_day};
use datafusion::arrow::util::pretty::pretty_format_batches;

/// Batches each dataset's day is delivered in.
const BATCHES: usize = 4;

/// Runs the demo in `home` (wiped first).
pub async fn run(seed: u64, home: &Path) -> Result<()> {
    let started = Instant::now();
    if home.exists() {
        std::fs::remove_dir_all(home)
            .with_context(|| format!("cannot clear {}", home.display()))?;
    }
    std::fs::create_dir_all(home)?;
    let home = std::fs::canonicalize(home)?;
    let deps = Deps::open(Config::embedded(&home, |name| std::env::var(name).ok())?).await?;
    bakehouse::hops::init(&deps, true).await?;
    say!("Bakehouse demo — warehouse {}", deps.lake.warehouse());

    let day = generate_day(&DayPlan::demo(seed, now_micros()));
    let total: usize = Dataset::EVENTS.iter().map(|d| day.lines(*d).len()).sum();
    say!(
        "Generated a day of {total} events (duplicates, invalid, rule-failing, late and too-late included).\n"
    );

    let mut first_batch = Vec::new();
    let datasets = Dataset::ALL.into_iter().filter(|d| !d.is_reference());
    for batch in 0..BATCHES {
        for dataset in datasets.clone() {
            let lines = day.lines(dataset);
            let chunk = lines.len().div_ceil(BATCHES);
            let part =
                &lines[(batch * chunk).min(lines.len())..((batch + 1) * chunk).min(lines.len())];
            let dir = home.join("landing").join(dataset.name());
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("batch-{}.jsonl", batch + 1));
            std::fs::write(&path, part.join("\n"))?;
            let path = path.display().to_string();
            crate::ingest_file(&deps, &path, None).await?;
            if batch == 0 {
                first_batch.push(path);
            }
        }
        let commits = crate::process(&deps).await?;
        say!(
            "Batch {}/{BATCHES}: ingested and processed ({commits} silver/gold commits).",
            batch + 1
        );
    }
    let mut redelivered = 0;
    for path in &first_batch {
        redelivered += crate::ingest_file(&deps, path, None)
            .await?
            .committed
            .values()
            .sum::<u64>();
    }
    say!("Batch 1 delivered again: {redelivered} rows added (idempotent ingest).\n");

    let report = maintenance::handle(&deps, now_micros()).await?;
    say!(
        "Maintenance (SCD2 dimensions, daily reports, compaction, expiry, orphans):\n{}\n",
        crate::describe_maintenance(&report)
    );

    let ctx = crate::sql::session(&deps).await?;
    for (title, sql) in SUMMARY {
        say!("{title}");
        say!(
            "{}\n",
            pretty_format_batches(&crate::sql::query(&ctx, sql).await?)?
        );
    }
    say!(
        "Done in {:.1} s. Explore (docs/operations.md):\n  \
         bakehouse --warehouse file://{home}/warehouse --catalog sqlite://{home}/catalog.db \
         status | report --out report.html | sql \"…\"",
        started.elapsed().as_secs_f64(),
        home = home.display()
    );
    Ok(())
}

const SUMMARY: [(&str, &str); 8] = [
    ("Rows per layer", "
        SELECT 'bronze' AS layer, 'sales_events' AS table_name, count(*) AS rows FROM bronze.sales_events
        UNION ALL SELECT 'bronze', 'equipment_metrics', count(*) FROM bronze.equipment_metrics
        UNION ALL SELECT 'bronze', 'inventory_updates', count(*) FROM bronze.inventory_updates
        UNION ALL SELECT 'bronze', 'quarantine', count(*) FROM bronze.quarantine
        UNION ALL SELECT 'silver', 'sales', count(*) FROM silver.sales
        UNION ALL SELECT 'silver', 'equipment_metrics', count(*) FROM silver.equipment_metrics
        UNION ALL SELECT 'silver', 'inventory', count(*) FROM silver.inventory
        UNION ALL SELECT 'gold', 'fact_sales', count(*) FROM gold.fact_sales
        UNION ALL SELECT 'gold', 'fact_sales_daily', count(*) FROM gold.fact_sales_daily
        UNION ALL SELECT 'gold', 'fact_inventory', count(*) FROM gold.fact_inventory
        UNION ALL SELECT 'gold', 'fact_equipment_performance', count(*) FROM gold.fact_equipment_performance
        UNION ALL SELECT 'gold', 'dim_store', count(*) FROM gold.dim_store
        UNION ALL SELECT 'gold', 'dim_product', count(*) FROM gold.dim_product
        UNION ALL SELECT 'gold', 'dim_customer', count(*) FROM gold.dim_customer
        UNION ALL SELECT 'gold', 'dim_equipment', count(*) FROM gold.dim_equipment
        ORDER BY CASE layer WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 ELSE 3 END, table_name"),
    ("Quarantine reasons", "
        SELECT dataset, error_code, count(*) AS records FROM bronze.quarantine
        GROUP BY dataset, error_code ORDER BY records DESC, dataset, error_code"),
    ("Data quality per dataset (gold.data_quality_daily)", "
        SELECT dataset, sum(records) AS records, sum(gold_eligible) AS gold_eligible,
               sum(quarantined) AS quarantined, sum(perfect) AS perfect, sum(poor) AS poor_below_50,
               round(sum(avg_quality_score * records) / sum(records), 1) AS avg_score
        FROM gold.data_quality_daily GROUP BY dataset ORDER BY dataset"),
    ("Late arrivals per dataset (gold.late_arrivals_daily)", "
        SELECT dataset, sum(late_records) AS late_over_1h, sum(too_late_records) AS too_late_over_48h,
               round(max(max_lateness_hours), 1) AS max_lateness_hours
        FROM gold.late_arrivals_daily GROUP BY dataset ORDER BY dataset"),
    ("Store dimension (gold.dim_store, SCD Type 2)", "
        SELECT store_key, store_id, name, city, manager, is_current FROM gold.dim_store
        ORDER BY store_key"),
    (
        "Top stores by revenue (gold)",
        "
        SELECT store_id, sum(revenue) AS revenue, sum(quantity) AS items,
               count(DISTINCT coalesce(transaction_id, sale_id)) AS transactions
        FROM gold.fact_sales GROUP BY store_id ORDER BY revenue DESC LIMIT 5",
    ),
    ("Top products by revenue (gold)", "
        SELECT product_id, sum(revenue) AS revenue, sum(quantity) AS items
        FROM gold.fact_sales_daily GROUP BY product_id ORDER BY revenue DESC LIMIT 5"),
    ("Revenue by channel (gold.fact_sales_daily)", "
        SELECT coalesce(channel, '(none)') AS channel, sum(revenue) AS revenue, sum(quantity) AS items,
               sum(transactions) AS transactions
        FROM gold.fact_sales_daily GROUP BY channel ORDER BY revenue DESC"),
];
