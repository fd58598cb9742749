//! `fact_sales`' surrogate keys resolve for every known id (SPEC §5), embedded: sales that
//! arrive before any reference snapshot get their keys at the next maintenance (a member's
//! first version covers every earlier event), an id no snapshot has held stays unkeyed, and a
//! member that appears in a later snapshot keys its earlier facts then. Every fact is joined
//! to the three dimensions the way a BI tool would.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bakehouse::adapters::lakehouse::tables;
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::records::{DimCustomer, DimProduct, DimStore, FactSale};
use bakehouse::domain::time::{MICROS_PER_HOUR, format_timestamp, now_micros};
use bakehouse::hops::{Deps, ingest, init, maintenance, to_gold, to_silver};

/// Sales of stores 1–3 and 9, products 1–2, customers c1, c2, an unknown one and none, at
/// `hours_ago`.
fn sales(prefix: &str, hours_ago: i64) -> String {
    let at = format_timestamp(now_micros() - hours_ago * MICROS_PER_HOUR);
    let customers = [r#""c1""#, r#""c2""#, r#""c-unknown""#, "null"];
    (0..16)
        .map(|i| {
            let store = [1, 2, 3, 9][i % 4];
            let product = 1 + i % 2;
            let customer = customers[(i / 2) % 4];
            format!(
                r#"{{"event_id":"{prefix}-{i}","event_time":"{at}","store_id":{store},"product_id":{product},"customer_id":{customer},"quantity":1,"unit_price":2.50}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn ingest(deps: &Deps, key: &str, dataset: Dataset, body: &str) {
    ingest::ingest_bytes(deps, key, Some(dataset), body.as_bytes())
        .await
        .unwrap();
}

async fn process(deps: &Deps) {
    to_silver::handle(deps, None).await.unwrap();
    to_gold::handle(deps, None).await.unwrap();
}

async fn maintain(deps: &Deps) -> maintenance::MaintenanceReport {
    maintenance::handle(deps, now_micros()).await.unwrap()
}

fn fact_sales_commits(report: &maintenance::MaintenanceReport) -> usize {
    report
        .tables
        .iter()
        .find(|t| t.table == "gold.fact_sales")
        .map_or(0, |t| t.commits)
}

/// A fact and the natural ids (store, product, customer) of the versions its keys name, or
/// `None` where a key is null.
type Joined = (FactSale, Option<i32>, Option<i32>, Option<String>);

/// Every fact joined to the dimensions by its keys.
async fn joined(deps: &Deps) -> Vec<Joined> {
    let lake = &deps.lake;
    let stores: HashMap<i64, DimStore> = lake
        .read_table::<DimStore>(&tables::DIM_STORE)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.store_key, d))
        .collect();
    let products: HashMap<i64, DimProduct> = lake
        .read_table::<DimProduct>(&tables::DIM_PRODUCT)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.product_key, d))
        .collect();
    let customers: HashMap<i64, DimCustomer> = lake
        .read_table::<DimCustomer>(&tables::DIM_CUSTOMER)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.customer_key, d))
        .collect();
    let mut facts: Vec<FactSale> = lake.read_table(&tables::FACT_SALES).await.unwrap();
    facts.sort_by(|a, b| a.sale_id.cmp(&b.sale_id));
    facts
        .into_iter()
        .map(|f| {
            let store = f.store_key.map(|k| stores[&k].store_id);
            let product = f.product_key.map(|k| products[&k].product_id);
            let customer = f.customer_key.map(|k| customers[&k].customer_id.clone());
            (f, store, product, customer)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_id_resolves_including_facts_older_than_their_reference() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    init(&deps, false).await.unwrap();

    // Sales first, into a lake without reference data: no key can resolve yet.
    ingest(
        &deps,
        "landing/sales-events/a.jsonl",
        Dataset::SalesEvents,
        &sales("a", 30),
    )
    .await;
    ingest(
        &deps,
        "landing/sales-events/b.jsonl",
        Dataset::SalesEvents,
        &sales("b", 2),
    )
    .await;
    process(&deps).await;
    let before = joined(&deps).await;
    assert_eq!(before.len(), 32);
    assert!(
        before
            .iter()
            .all(|(f, ..)| (f.store_key, f.product_key, f.customer_key) == (None, None, None))
    );

    // Then the reference snapshots, later than every sale; store 9 is in none of them.
    let stores = "store_id,name,city,region,opening_hour,closing_hour,manager\n\
                  1,Central,Lyon,East,06:00,20:00,Ann\n2,Harbour,Nantes,West,06:00,20:00,Bo\n\
                  3,Station,Lille,North,06:00,20:00,Cy";
    ingest(&deps, "landing/stores/s1.csv", Dataset::Stores, stores).await;
    let products =
        "product_id,name,category,list_price\n1,Baguette,bread,1.20\n2,Croissant,pastry,1.50";
    ingest(
        &deps,
        "landing/products/p1.csv",
        Dataset::Products,
        products,
    )
    .await;
    let customers = "customer_id,loyalty_tier,city\nc1,gold,Lyon\nc2,silver,Nantes";
    ingest(
        &deps,
        "landing/customers/c1.csv",
        Dataset::Customers,
        customers,
    )
    .await;
    let report = maintain(&deps).await;
    assert_eq!(fact_sales_commits(&report), 1, "{report:?}");

    let after = joined(&deps).await;
    assert_eq!(after.len(), 32);
    for (fact, store, product, customer) in &after {
        let known_store = fact.store_id != 9;
        assert_eq!(
            *store,
            known_store.then_some(fact.store_id),
            "{}",
            fact.sale_id
        );
        assert_eq!(*product, Some(fact.product_id), "{}", fact.sale_id);
        let known_customer = fact
            .customer_id
            .clone()
            .filter(|c| c.as_str() != "c-unknown");
        assert_eq!(*customer, known_customer, "{}", fact.sale_id);
    }
    // Only the keys changed: every other column is as before.
    let strip = |rows: &[Joined]| {
        rows.iter()
            .map(|(f, ..)| FactSale {
                store_key: None,
                product_key: None,
                customer_key: None,
                ..f.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&after), strip(&before));

    // Nothing left to resolve: the next run leaves fact_sales alone, and new sales are keyed as
    // they arrive.
    assert_eq!(fact_sales_commits(&maintain(&deps).await), 0);
    ingest(
        &deps,
        "landing/sales-events/c.jsonl",
        Dataset::SalesEvents,
        &sales("c", 1),
    )
    .await;
    process(&deps).await;
    let with_new = joined(&deps).await;
    assert_eq!(with_new.len(), 48);
    for (fact, store, ..) in with_new
        .iter()
        .filter(|(f, ..)| f.sale_id.starts_with("c-"))
    {
        assert_eq!(*store, (fact.store_id != 9).then_some(fact.store_id));
    }

    // Store 9 joins a later snapshot: its earlier facts take its first version's key.
    let with_nine = format!("{stores}\n9,Airport,Paris,North,05:00,22:00,Di");
    ingest(&deps, "landing/stores/s2.csv", Dataset::Stores, &with_nine).await;
    maintain(&deps).await;
    let keyed = joined(&deps).await;
    assert_eq!(keyed.len(), 48);
    assert!(
        keyed
            .iter()
            .all(|(f, store, ..)| *store == Some(f.store_id))
    );
}
