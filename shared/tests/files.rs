//! Parquet written in lanes and read back in shares, against a real SQLite catalog and
//! warehouse in a temp dir: every row lands once, a date of several batches is split over one
//! file per lane, and a read that decodes each file's row groups on two tasks returns them in
//! file order, each file's rows in the order they were written.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use arrow_array::RecordBatch;
use bakehouse::adapters::lakehouse::{
    CommitPlan, DEFAULT_TARGET_FILE_SIZE, Lakehouse, arrow_schema, batch_to_rows, partition_value,
    rows_to_batch, tables::QUARANTINE, write_produced,
};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::records::QuarantineRow;
use bakehouse::error::StorageError;

const ROWS_PER_BATCH: usize = 2_000;

/// Quarantine rows of `day` tagged `b{batch}-{row}`, with ~2 KB of incompressible-ish text each
/// so that a few batches make a file of several row groups.
fn batch_rows(batch: usize, day: i64) -> Vec<QuarantineRow> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ batch as u64;
    (0..ROWS_PER_BATCH)
        .map(|row| {
            let mut r = support::row(&format!("b{batch}-{row:05}"), day);
            r.raw = (0..128)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    format!("{x:016x}")
                })
                .collect();
            r
        })
        .collect()
}

fn tags(rows: &[QuarantineRow]) -> Vec<String> {
    rows.iter().map(|r| r.source_ref.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_and_shares_keep_every_row_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        warehouse: Some(format!("file://{}/warehouse", dir.path().display())),
        catalog: Some(format!("sqlite://{}/catalog.db", dir.path().display())),
    };
    let lake = Lakehouse::open(&Config::from_lookup(&overrides, |_| None).unwrap())
        .await
        .unwrap();
    lake.create_tables().await.unwrap();
    let table = lake.load(&QUARANTINE).await.unwrap();
    let schema = arrow_schema(&table).unwrap();

    // Five batches of day 20,000, then one of the next day.
    let batches: Vec<(i32, Vec<QuarantineRow>)> = (0..6)
        .map(|b| {
            let day = 20_000 + i64::from(b == 5);
            (day as i32, batch_rows(b, day))
        })
        .collect();
    let written: Vec<String> = batches.iter().flat_map(|(_, rows)| tags(rows)).collect();
    let items: Vec<Result<RecordBatch, StorageError>> = batches
        .iter()
        .map(|(_, rows)| Ok(rows_to_batch("test", &schema, rows).unwrap()))
        .collect();
    let (files, _) = write_produced(&table, DEFAULT_TARGET_FILE_SIZE, 2, items.into_iter())
        .await
        .unwrap();

    // Batches 0, 2, 4 went to one lane, 1 and 3 to the other, the next day's to the first
    // again: two files of day 20,000, one of day 20,001.
    let mut per_day: HashMap<Option<i32>, Vec<u64>> = HashMap::new();
    for file in &files {
        per_day
            .entry(partition_value(file))
            .or_default()
            .push(file.record_count());
    }
    let mut first_day = per_day[&Some(20_000)].clone();
    first_day.sort_unstable();
    assert_eq!(
        first_day,
        vec![2 * ROWS_PER_BATCH as u64, 3 * ROWS_PER_BATCH as u64]
    );
    assert_eq!(per_day[&Some(20_001)], vec![ROWS_PER_BATCH as u64]);

    lake.commit_with(&QUARANTINE, |_| {
        let add = files.clone();
        async move { Ok(Some(CommitPlan::append(add, HashMap::new()))) }
    })
    .await
    .unwrap();
    let table = lake.load(&QUARANTINE).await.unwrap();
    let live = lake.live_files(&table).await.unwrap();
    assert!(
        live.iter()
            .any(|f| f.data_file.split_offsets().is_some_and(|s| s.len() >= 2)),
        "a file of three batches has several row groups, so both shares read some"
    );

    // One read on two tasks: file by file, as each file alone reads (one task, in order).
    let mut read = Vec::new();
    for batch in lake.read_batches(&table, &live, None).await.unwrap() {
        read.extend(tags(
            &batch_to_rows::<QuarantineRow>("test", &batch).unwrap(),
        ));
    }
    let mut expected = Vec::new();
    for file in &live {
        let rows: Vec<QuarantineRow> = lake
            .read_rows(&table, std::slice::from_ref(file))
            .await
            .unwrap();
        let file_tags = tags(&rows);
        let mut sorted = file_tags.clone();
        sorted.sort();
        assert_eq!(
            file_tags, sorted,
            "a lane writes its batches in the order they came"
        );
        expected.extend(file_tags);
    }
    assert_eq!(read, expected);
    // Read ahead of a blocking consumer (silver → gold): the same rows in the same order.
    let ahead = lake.read_ahead(&table, live.clone(), None).unwrap();
    let streamed = tokio::task::spawn_blocking(move || {
        let mut streamed = Vec::new();
        for batch in ahead {
            let rows = batch_to_rows::<QuarantineRow>("test", &batch.unwrap()).unwrap();
            streamed.extend(tags(&rows));
        }
        streamed
    })
    .await
    .unwrap();
    assert_eq!(streamed, read);
    let mut all = read;
    all.sort();
    let mut written = written;
    written.sort();
    assert_eq!(all, written, "every row once");
}
