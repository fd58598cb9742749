//! Finding rows by key in silver reads only what can hold them: four silver files of one date,
//! each from its own batch (its own hour and ids); a lookup opens only the file whose bounds
//! admit the keys, and decodes no row group whose bloom filter rules them all out.

#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use bakehouse::adapters::lakehouse::{KeyProbe, LookupStats, tables};
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::{MICROS_PER_HOUR, MICROS_PER_SECOND, format_timestamp, now_micros};
use bakehouse::hops::{Deps, ingest, init, to_silver};
use serde_json::json;

const BATCHES: i64 = 4;
const ROWS: i64 = 500;

/// Sale `i` of batch `b`: its id and event time (each batch in its own hour of one day).
fn sale(day_start: i64, b: i64, i: i64) -> (String, i64) {
    (
        format!("E{b}-{i:04}"),
        day_start + (b + 1) * MICROS_PER_HOUR + i * MICROS_PER_SECOND,
    )
}

fn probe(keys: &[(String, i64)], with_times: bool) -> KeyProbe {
    let mut probe = KeyProbe::default();
    for (id, _) in keys {
        probe.keys.insert(id);
    }
    if with_times {
        let mut times: Vec<i64> = keys.iter().map(|(_, t)| *t).collect();
        times.sort_unstable();
        probe.times = Some(times);
    }
    probe
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_reads_only_the_files_and_row_groups_that_can_hold_its_keys() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    init(&deps, true).await.unwrap();
    // Yesterday, so that every hour of the batches is in the past.
    let day_start = (now_micros() / (24 * MICROS_PER_HOUR) - 1) * 24 * MICROS_PER_HOUR;
    for b in 0..BATCHES {
        let lines: Vec<String> = (0..ROWS)
            .map(|i| {
                let (id, at) = sale(day_start, b, i);
                json!({"event_id": id, "event_time": format_timestamp(at), "store_id": 1,
                       "product_id": 1, "quantity": 1, "unit_price": 2.5})
                .to_string()
            })
            .collect();
        let key = format!("landing/sales-events/batch-{b}.jsonl");
        ingest::ingest_bytes(
            &deps,
            &key,
            Some(Dataset::SalesEvents),
            lines.join("\n").as_bytes(),
        )
        .await
        .unwrap();
        to_silver::handle(&deps, None).await.unwrap();
    }
    let lake = &deps.lake;
    let silver = lake.load(&tables::SILVER_SALES).await.unwrap();
    let files = lake.live_files(&silver).await.unwrap();
    assert_eq!(files.len(), BATCHES as usize, "one silver file per batch");
    let find = async |probe: &KeyProbe| {
        let (found, stats) = lake
            .find_keys(
                &silver,
                &files,
                "event_id",
                "event_time",
                probe,
                &["event_id"],
            )
            .await
            .unwrap();
        let mut ids: Vec<String> = found
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
            })
            .collect::<Vec<_>>();
        ids.sort();
        (ids, stats)
    };

    // The ids of one batch, with their times: one file opened, its row group read.
    let batch_two: Vec<_> = (0..ROWS).map(|i| sale(day_start, 2, i)).collect();
    let (ids, stats) = find(&probe(&batch_two, true)).await;
    assert_eq!(
        ids,
        batch_two
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
    );
    let want = LookupStats {
        files: 4,
        files_opened: 1,
        row_groups: 1,
        row_groups_read: 1,
    };
    assert_eq!(stats, want);

    // The same without times: the ids' bounds alone rule the other files out.
    let (ids, stats) = find(&probe(&batch_two[..10], false)).await;
    assert_eq!(ids.len(), 10);
    assert_eq!(stats, want);

    // Ids that no file holds, at times inside batch two's hour and between its ids' bounds:
    // the file is opened, but its bloom filter rules every id out, so nothing is decoded.
    let absent: Vec<_> = (0..50)
        .map(|i| (format!("E2-{i:04}x"), sale(day_start, 2, i).1))
        .collect();
    let (ids, stats) = find(&probe(&absent, true)).await;
    assert!(ids.is_empty());
    assert_eq!(
        stats,
        LookupStats {
            row_groups_read: 0,
            ..want
        }
    );
}
