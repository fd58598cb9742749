//! Incremental silver and gold against a recomputation: random sales, inventory and equipment
//! events — late, too late, duplicated with a changed payload, transactions split over
//! batches — delivered in random batches in a random order (with a too-late backfill now and
//! then), with weather pulls of the same days in any order, processed incrementally; then every
//! date is recomputed by a backfill, and no gold table — facts, `dim_weather`, the demand
//! features — may change. Silver must hold each id once, as first delivered.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use arrow_cast::display::{ArrayFormatter, FormatOptions};
use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::{MICROS_PER_HOUR, MICROS_PER_SECOND, date_of, format_timestamp};
use bakehouse::hops::to_gold::{Backfill, Fact, catch_up};
use bakehouse::hops::{Deps, ingest, init, to_gold, to_silver};
use bakehouse_simulate::{DayPlan, generate_day};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Random cases run; each is a fresh lake.
const CASES: u64 = 6;

/// Every row of a table, each as its columns' text joined, sorted: equal tables give equal
/// lists, whatever their files and row order.
async fn table_lines(lake: &Lakehouse, def: &TableDef) -> Vec<String> {
    let table = lake.load(def).await.unwrap();
    let files = lake.live_files(&table).await.unwrap();
    let options = FormatOptions::default().with_null("∅");
    let mut lines = Vec::new();
    for batch in lake.read_batches(&table, &files, None).await.unwrap() {
        let columns: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
            lines.push(cells.join("|"));
        }
    }
    lines.sort();
    lines
}

/// Sales line items: transactions of one to four items (some without a transaction id) in two
/// stores over two products, so items of one transaction share a daily group; on time, late
/// and too late; some failing enough rules to stay out of gold; some duplicated later with the
/// same id and time and another quantity (a producer retry). Returns the lines and the event
/// time of each too-late one.
fn sales(rng: &mut StdRng, now: i64, transactions: usize) -> (Vec<String>, Vec<i64>) {
    let (mut lines, mut too_late) = (Vec::new(), Vec::new());
    for t in 0..transactions {
        let at = match rng.random_range(0..10) {
            0 => now - rng.random_range(50..100) * MICROS_PER_HOUR, // too late
            1 | 2 => now - rng.random_range(20..46) * MICROS_PER_HOUR, // late
            _ => now - rng.random_range(0..20 * 3600) * MICROS_PER_SECOND,
        };
        let transaction = (rng.random_range(0..5) > 0).then(|| format!("T{t}"));
        let store = rng.random_range(1..=2);
        for item in 0..rng.random_range(1..=4) {
            let failing = rng.random_range(0..8) == 0;
            let time = at + item * MICROS_PER_SECOND;
            let mut sale = json!({
                "event_id": format!("E{t}-{item}"),
                "transaction_id": transaction,
                "event_time": format_timestamp(time),
                "store_id": if failing { 99 } else { store },
                "product_id": if failing { 99 } else { rng.random_range(1..=2) },
                "quantity": if failing { 0 } else { rng.random_range(1..=5) },
                "unit_price": 2.5,
                "promotion_id": (rng.random_range(0..3) == 0).then_some("P1"),
            });
            lines.push(sale.to_string());
            if at < now - 48 * MICROS_PER_HOUR {
                too_late.push(time);
            }
            if rng.random_range(0..8) == 0 {
                sale["quantity"] = json!(rng.random_range(6..=9));
                lines.push(sale.to_string());
            }
        }
    }
    (lines, too_late)
}

/// Weather pulls of stores 1–2 over the last four days, each day pulled several times (at
/// random times: the latest pull must win, whatever the delivery order).
fn weather(rng: &mut StdRng, now: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for store in 1..=2 {
        for back in 0..4 {
            let date = bakehouse::domain::time::date_from_days(date_of(now) - back);
            for _ in 0..rng.random_range(1..=3) {
                let pulled = now - rng.random_range(0..72 * 3600) * MICROS_PER_SECOND;
                lines.push(
                    json!({
                        "store_id": store,
                        "date": date.to_string(),
                        "pulled_at": format_timestamp(pulled),
                        "temperature_max_c": rng.random_range(0..30),
                        "temperature_min_c": rng.random_range(-10..0),
                        "precipitation_mm": rng.random_range(0..20),
                        "weather_code": rng.random_range(0..4),
                    })
                    .to_string(),
                );
            }
        }
    }
    lines
}

/// The lines dealt into `batches` batches in a random order.
fn deal(rng: &mut StdRng, mut lines: Vec<String>, batches: usize) -> Vec<Vec<String>> {
    lines.shuffle(rng);
    let mut dealt = vec![Vec::new(); batches];
    for line in lines {
        dealt[rng.random_range(0..batches)].push(line);
    }
    dealt
}

async fn process(deps: &Deps) {
    to_silver::handle(deps, None).await.unwrap();
    to_gold::handle(deps, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_gold_equals_a_backfill_of_the_same_dates() {
    for seed in 0..CASES {
        let mut rng = StdRng::seed_from_u64(seed);
        let home = tempfile::tempdir().unwrap();
        let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
            .await
            .unwrap();
        init(&deps, true).await.unwrap();
        let now = bakehouse::domain::time::now_micros();
        let (sales, too_late) = sales(&mut rng, now, 120);
        let day = generate_day(&DayPlan {
            sales: 0,
            readings: 120,
            inventory: 120,
            invalid: 0.0,
            duplicate: 0.1,
            late: 0.2,
            too_late: 0.1,
            ..DayPlan::demo(seed, now)
        });
        let batches = rng.random_range(2..=6);
        let pulls = weather(&mut rng, now);
        let deliveries = [
            (Dataset::SalesEvents, deal(&mut rng, sales, batches)),
            (
                Dataset::EquipmentMetrics,
                deal(&mut rng, day.readings, batches),
            ),
            (
                Dataset::InventoryUpdates,
                deal(&mut rng, day.inventory, batches),
            ),
            (Dataset::Weather, deal(&mut rng, pulls, batches)),
        ];
        // The quantity of each sale as first delivered: what silver must keep.
        let mut first: HashMap<String, i64> = HashMap::new();
        for b in 0..batches {
            for (dataset, dealt) in &deliveries {
                let body = dealt[b].join("\n");
                let key = format!("landing/{}/case-{seed}-batch-{b}.jsonl", dataset.name());
                ingest::ingest_bytes(&deps, &key, Some(*dataset), body.as_bytes())
                    .await
                    .unwrap();
                if *dataset == Dataset::SalesEvents {
                    for line in &dealt[b] {
                        let sale: serde_json::Value = serde_json::from_str(line).unwrap();
                        first
                            .entry(sale["event_id"].as_str().unwrap().to_string())
                            .or_insert(sale["quantity"].as_i64().unwrap());
                    }
                }
            }
            // Hops run after most batches, not all: then one run takes several batches.
            if rng.random_range(0..4) > 0 {
                process(&deps).await;
            }
            if rng.random_range(0..4) == 0
                && let Some(t) = too_late.get(rng.random_range(0..too_late.len().max(1)))
            {
                let date = date_of(*t);
                let also = Backfill {
                    from: date,
                    to: date,
                    too_late: true,
                };
                catch_up(&deps, &Fact::ALL, Some(also)).await.unwrap();
            }
        }
        process(&deps).await;

        let silver: Vec<(String, i64)> = table_lines(&deps.lake, &tables::SILVER_SALES)
            .await
            .into_iter()
            .map(|line| {
                let cells: Vec<&str> = line.split('|').collect();
                (cells[0].to_string(), cells[7].parse().unwrap())
            })
            .collect();
        let mut want: Vec<(String, i64)> = first.into_iter().collect();
        want.sort();
        assert_eq!(
            silver, want,
            "case {seed}: each id once, as first delivered"
        );

        let facts = Fact::ALL.map(Fact::table);
        let mut incremental = Vec::new();
        for fact in &facts {
            incremental.push(table_lines(&deps.lake, fact).await);
        }
        let features = table_lines(&deps.lake, &tables::FEATURES_DEMAND_DAILY).await;
        let everything = Backfill {
            from: i32::MIN,
            to: i32::MAX,
            too_late: false,
        };
        catch_up(&deps, &Fact::ALL, Some(everything)).await.unwrap();
        // Every fact date rewritten: the features of all of them are recomputed.
        bakehouse::hops::features::refresh(&deps).await.unwrap();
        for (fact, incremental) in facts.iter().zip(incremental) {
            let recomputed = table_lines(&deps.lake, fact).await;
            assert!(
                !recomputed.is_empty(),
                "case {seed}: {} is empty",
                fact.name
            );
            assert_eq!(
                incremental, recomputed,
                "case {seed}: {} incremental vs recomputed",
                fact.name
            );
        }
        assert!(!features.is_empty(), "case {seed}: no features");
        assert_eq!(
            features,
            table_lines(&deps.lake, &tables::FEATURES_DEMAND_DAILY).await,
            "case {seed}: features incremental vs recomputed"
        );
    }
}
