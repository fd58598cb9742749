//! `gold.features_demand_daily` kept incrementally, embedded: a late sale changes the lags and
//! rolling means of the dates after it, a stock count and the weather join their day, and the
//! table always holds what a recomputation would.

#![allow(clippy::unwrap_used)]

use bakehouse::adapters::lakehouse::tables;
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::records::FeatureDemandDaily;
use bakehouse::domain::time::{
    MICROS_PER_DAY, MICROS_PER_HOUR, date_of, format_timestamp, now_micros,
};
use bakehouse::hops::{Deps, ingest, init, to_gold, to_silver};
use serde_json::json;

/// One sale of store 1, product 1, `days` days before `noon`.
fn sale(id: &str, noon: i64, days: i64, quantity: i64, promotion: Option<&str>) -> String {
    json!({
        "event_id": id,
        "event_time": format_timestamp(noon - days * MICROS_PER_DAY),
        "store_id": 1,
        "product_id": 1,
        "quantity": quantity,
        "unit_price": 2.0,
        "promotion_id": promotion,
    })
    .to_string()
}

async fn deliver(deps: &Deps, name: &str, dataset: Dataset, lines: &[String]) {
    let key = format!("landing/{}/{name}.jsonl", dataset.name());
    ingest::ingest_bytes(deps, &key, Some(dataset), lines.join("\n").as_bytes())
        .await
        .unwrap();
    to_silver::handle(deps, None).await.unwrap();
    to_gold::handle(deps, None).await.unwrap();
}

async fn features(deps: &Deps) -> Vec<FeatureDemandDaily> {
    let mut rows: Vec<FeatureDemandDaily> = deps
        .lake
        .read_table(&tables::FEATURES_DEMAND_DAILY)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.business_date);
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_sale_reaches_the_features_of_the_days_after_it() {
    let home = tempfile::tempdir().unwrap();
    let config = Config::embedded(home.path(), |name| {
        (name == "BAKEHOUSE_ALLOWED_LATENESS_HOURS").then(|| "8760".to_string())
    })
    .unwrap();
    let deps = Deps::open(config).await.unwrap();
    init(&deps, true).await.unwrap();
    // Yesterday noon (UTC): every sale lies on a whole day before now.
    let noon = (date_of(now_micros()) - 1) as i64 * MICROS_PER_DAY + 12 * MICROS_PER_HOUR;
    let day = date_of(noon);

    deliver(
        &deps,
        "a",
        Dataset::SalesEvents,
        &[sale("a", noon, 0, 3, None)],
    )
    .await;
    let first = features(&deps).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].business_date,
            first[0].quantity,
            first[0].quantity_lag_1
        ),
        (day, 3, 0)
    );

    // A day earlier, arriving later, on promotion: yesterday's lag and means move.
    deliver(
        &deps,
        "b",
        Dataset::SalesEvents,
        &[sale("b", noon, 1, 5, Some("P"))],
    )
    .await;
    // Ten days earlier: within the 28-day window only.
    deliver(
        &deps,
        "c",
        Dataset::SalesEvents,
        &[sale("c", noon, 10, 7, None)],
    )
    .await;
    let rows = features(&deps).await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.business_date, r.quantity))
            .collect::<Vec<_>>(),
        [(day - 10, 7), (day - 1, 5), (day, 3)]
    );
    let today = &rows[2];
    assert_eq!((today.quantity_lag_1, today.quantity_lag_7), (5, 0));
    assert!((today.rolling_mean_7 - 8.0 / 7.0).abs() < 1e-12);
    assert!((today.rolling_mean_28 - 15.0 / 28.0).abs() < 1e-12);
    assert_eq!((rows[1].promotion_share, today.promotion_share), (1.0, 0.0));
    assert_eq!(rows[1].revenue.0, 1000);

    // A stock count and the weather join their day.
    let update = json!({
        "update_id": "u1", "event_time": format_timestamp(noon), "store_id": 1, "product_id": 1,
        "beginning_stock": 10, "restocked_quantity": 0, "sold_quantity": 3, "waste_quantity": 1,
    });
    deliver(&deps, "u", Dataset::InventoryUpdates, &[update.to_string()]).await;
    let pull = json!({
        "store_id": 1, "date": bakehouse::domain::time::date_from_days(day).to_string(),
        "pulled_at": format_timestamp(noon), "temperature_max_c": 18.5, "temperature_min_c": 9.0,
        "precipitation_mm": 1.2, "weather_code": 61,
    });
    deliver(&deps, "w", Dataset::Weather, &[pull.to_string()]).await;
    let rows = features(&deps).await;
    let today = &rows[2];
    assert_eq!(
        (today.waste_ratio, today.stock_out),
        (Some(0.1), Some(false))
    );
    assert_eq!(
        (today.temperature_max_c, today.precipitation_mm),
        (Some(18.5), Some(1.2))
    );
    assert_eq!(rows[1].temperature_max_c, None);
}
