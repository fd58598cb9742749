//! End to end, embedded: a generated day with every kind of flaw goes through ingest (in
//! batches, one redelivered), silver and gold; gold is compared with an expectation computed
//! here, independently, from the raw lines and SPEC §3–5's rules.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::{FactEquipmentPerformance, FactInventory, FactSalesDaily};
use bakehouse::hops::{Deps, ingest, init, to_gold, to_silver};
use bakehouse_simulate::{DayPlan, generate_day};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

async fn read<T: DeserializeOwned>(lake: &Lakehouse, def: &TableDef) -> Vec<T> {
    lake.read_table(def).await.unwrap()
}

/// A record the rules of SPEC §2 accept, as the test reads them (None: quarantined).
fn parse(line: &str, id: &str) -> Option<(String, DateTime<Utc>, serde_json::Map<String, Value>)> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let id = o
        .get(id)?
        .as_str()
        .filter(|s| !s.is_empty() && s.chars().count() <= 64)?
        .to_string();
    let t = DateTime::parse_from_rfc3339(o.get("event_time")?.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    for f in ["store_id", "product_id", "quantity", "equipment_id"] {
        if o.get(f).is_some_and(|v| !v.is_i64()) {
            return None;
        }
    }
    Some((id, t, o))
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_matches_an_independent_computation() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    init(&deps, true).await.unwrap();
    let now = Utc::now();
    let plan = DayPlan {
        sales: 1500,
        readings: 400,
        inventory: 400,
        duplicate: 0.05,
        invalid: 0.05,
        rule_failing: 0.1,
        late: 0.1,
        too_late: 0.05,
        ..DayPlan::demo(11, now.timestamp_micros())
    };
    let day = generate_day(&plan);

    // Deliver in three batches, processing after each; then the first batch again.
    let batches = 3;
    let chunk = |lines: &[String], b: usize| {
        let n = lines.len().div_ceil(batches);
        lines[(b * n).min(lines.len())..((b + 1) * n).min(lines.len())].join("\n")
    };
    for b in 0..batches {
        for (folder, lines) in [
            ("sales-events", &day.sales),
            ("equipment-metrics", &day.readings),
            ("inventory-updates", &day.inventory),
        ] {
            let key = format!("landing/{folder}/batch-{b}.jsonl");
            ingest::ingest_bytes(&deps, &key, None, chunk(lines, b).as_bytes())
                .await
                .unwrap();
        }
        to_silver::handle(&deps, None).await.unwrap();
        to_gold::handle(&deps, None).await.unwrap();
    }
    let again = ingest::ingest_bytes(
        &deps,
        "landing/sales-events/batch-0.jsonl",
        None,
        chunk(&day.sales, 0).as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(again.commits, 0);
    assert!(to_silver::handle(&deps, None).await.unwrap().is_empty());

    let late = |t: DateTime<Utc>| (now - t).num_hours() >= 48;
    let future = |t: DateTime<Utc>| (t - now).num_minutes() >= 5;

    // Sales: first valid copy of each id, scored, eligible when ≥ 50 and not too late.
    let mut seen = HashSet::new();
    // (date, store, product, channel) → (quantity, revenue cents, line items, transactions)
    type Daily = (i64, i64, i64, HashSet<String>);
    let mut expected: BTreeMap<(i32, i64, i64, Option<String>), Daily> = BTreeMap::new();
    for line in &day.sales {
        let Some((id, t, o)) = parse(line, "event_id") else {
            continue;
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let (store, product, quantity, price) = (
            o["store_id"].as_i64().unwrap(),
            o["product_id"].as_i64().unwrap(),
            o["quantity"].as_i64().unwrap(),
            cents(&o["unit_price"]),
        );
        let score = 100
            - if (1..=5).contains(&store) { 0 } else { 20 }
            - if (1..=10).contains(&product) { 0 } else { 20 }
            - if (1..=100).contains(&quantity) { 0 } else { 25 }
            - if (1..=100_000).contains(&price) {
                0
            } else {
                25
            }
            - if future(t) { 10 } else { 0 };
        let channel = o.get("channel").and_then(Value::as_str).map(str::to_string);
        let remote = matches!(channel.as_deref(), Some("online" | "app"));
        let score = score
            - if remote && o["customer_id"].is_null() {
                10
            } else {
                0
            };
        if score < 50 || late(t) {
            continue;
        }
        let date = (t.timestamp().div_euclid(86_400)) as i32;
        let acc = expected.entry((date, store, product, channel)).or_default();
        acc.0 += quantity;
        acc.1 += quantity * price;
        acc.2 += 1;
        acc.3.insert(
            o.get("transaction_id")
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_string(),
        );
    }
    let mut daily: Vec<FactSalesDaily> = read(&deps.lake, &tables::FACT_SALES_DAILY).await;
    daily.sort_by_key(|d| (d.business_date, d.store_id, d.product_id, d.channel.clone()));
    let got: Vec<_> = daily
        .iter()
        .map(|d| {
            (
                (
                    d.business_date,
                    i64::from(d.store_id),
                    i64::from(d.product_id),
                    d.channel.clone(),
                ),
                (d.quantity, d.revenue.0, d.line_items, d.transactions),
            )
        })
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(k, v)| (k.clone(), (v.0, v.1, v.2, v.3.len() as i64)))
        .collect();
    assert!(want.len() > 50, "the generated day should span many groups");
    assert_eq!(got, want);

    // Inventory: the day's latest eligible update per store × product.
    let mut seen = HashSet::new();
    // (date, store, product) → (event time, update id, closing stock, updates)
    type Latest = (DateTime<Utc>, String, i64, i64);
    let mut latest: BTreeMap<(i32, i64, i64), Latest> = BTreeMap::new();
    for line in &day.inventory {
        let Some((id, t, o)) = parse(line, "update_id") else {
            continue;
        };
        if !seen.insert(id.clone()) || late(t) {
            continue;
        }
        let n = |f: &str| o[f].as_i64().unwrap();
        let closing = n("beginning_stock") + n("restocked_quantity")
            - n("sold_quantity")
            - n("waste_quantity");
        let counts_ok = [
            "beginning_stock",
            "restocked_quantity",
            "sold_quantity",
            "waste_quantity",
        ]
        .iter()
        .all(|f| (0..=10_000).contains(&n(f)));
        let score =
            100 - if (1..=5).contains(&n("store_id")) {
                0
            } else {
                15
            } - if (1..=10).contains(&n("product_id")) {
                0
            } else {
                15
            } - if counts_ok { 0 } else { 15 }
                - if closing >= 0 { 0 } else { 10 };
        if score < 50 {
            continue;
        }
        let key = (
            (t.timestamp().div_euclid(86_400)) as i32,
            n("store_id"),
            n("product_id"),
        );
        let entry = latest.entry(key).or_insert((t, id.clone(), closing, 0));
        if (t, &id) > (entry.0, &entry.1) {
            (entry.0, entry.1, entry.2) = (t, id, closing);
        }
        entry.3 += 1;
    }
    let mut inventory: Vec<FactInventory> = read(&deps.lake, &tables::FACT_INVENTORY).await;
    inventory.sort_by_key(|f| (f.business_date, f.store_id, f.product_id));
    let got: Vec<_> = inventory
        .iter()
        .map(|f| {
            (
                (
                    f.business_date,
                    i64::from(f.store_id),
                    i64::from(f.product_id),
                ),
                (f.closing_stock, f.updates),
            )
        })
        .collect();
    let want: Vec<_> = latest.iter().map(|(k, v)| (*k, (v.2, v.3))).collect();
    assert_eq!(got, want);

    // Equipment: eligible readings per day × equipment.
    let mut seen = HashSet::new();
    let mut readings: BTreeMap<(i32, i64), i64> = BTreeMap::new();
    for line in &day.readings {
        let Some((id, t, o)) = parse(line, "metric_id") else {
            continue;
        };
        if o.get("operational_status").is_none() || !seen.insert(id) || late(t) {
            continue;
        }
        let equipment = o["equipment_id"].as_i64().unwrap();
        let power = o["power_kw"].as_f64().unwrap();
        let range = match equipment {
            1 | 4 | 7 => Some((0.0, 300.0)),
            2 => Some((0.0, 60.0)),
            3 => Some((0.0, 100.0)),
            5 => Some((-30.0, 15.0)),
            6 => Some((-10.0, 25.0)),
            _ => None,
        };
        let temperature_ok = match (o.get("temperature_c").and_then(Value::as_f64), range) {
            (Some(c), Some((lo, hi))) => (lo..=hi).contains(&c),
            _ => true,
        };
        let score = 100
            - if range.is_some() { 0 } else { 25 }
            - if (0.0..=100.0).contains(&power) {
                0
            } else {
                25
            }
            - if temperature_ok { 0 } else { 25 }
            - if future(t) { 25 } else { 0 };
        if score < 50 {
            continue;
        }
        *readings
            .entry((
                (t.timestamp().div_euclid(86_400)) as i32,
                o["equipment_id"].as_i64().unwrap(),
            ))
            .or_default() += 1;
    }
    let performance: Vec<FactEquipmentPerformance> =
        read(&deps.lake, &tables::FACT_EQUIPMENT_PERFORMANCE).await;
    let got: BTreeMap<(i32, i64), i64> = performance
        .iter()
        .map(|f| ((f.business_date, i64::from(f.equipment_id)), f.readings))
        .collect();
    assert_eq!(got, readings);
}
