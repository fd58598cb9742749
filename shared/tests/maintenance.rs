//! Compaction, snapshot expiry and orphan removal against a real catalog and warehouse in a
//! temp dir (SQLite, and the PostgreSQL server `make test` starts): compaction racing a
//! concurrent writer loses and duplicates nothing, expiry keeps what the policy says, and
//! orphan removal never deletes a file a live snapshot reads.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use bakehouse::adapters::lakehouse::{Lakehouse, tables::QUARANTINE};
use bakehouse::config::{Config, MaintenancePolicy, Overrides};
use bakehouse::domain::records::QuarantineRow;
use bakehouse::domain::time::{MICROS_PER_DAY, now_micros};

fn config(dir: &std::path::Path, catalog: Option<&str>) -> Config {
    let overrides = Overrides {
        warehouse: Some(format!("file://{}/warehouse", dir.display())),
        catalog: Some(
            catalog
                .map(str::to_string)
                .unwrap_or_else(|| format!("sqlite://{}/catalog.db", dir.display())),
        ),
    };
    Config::from_lookup(&overrides, |name| {
        (name == "BAKEHOUSE_COMMIT_ATTEMPTS").then(|| "200".to_string())
    })
    .unwrap()
}

fn policy() -> MaintenancePolicy {
    MaintenancePolicy {
        target_file_bytes: 128 * 1024 * 1024,
        snapshot_max_age_micros: 7 * MICROS_PER_DAY,
        snapshots_kept: 5,
        orphan_min_age_micros: MICROS_PER_DAY,
    }
}

/// The tags of every row, sorted (a multiset).
async fn tags(lake: &Lakehouse) -> Vec<String> {
    let rows: Vec<QuarantineRow> = lake.read_table(&QUARANTINE).await.unwrap();
    let mut tags: Vec<String> = rows.into_iter().map(|r| r.source_ref).collect();
    tags.sort();
    tags
}

/// Live data files per partition day.
async fn files_per_day(lake: &Lakehouse) -> HashMap<Option<i32>, usize> {
    let table = lake.load(&QUARANTINE).await.unwrap();
    let mut out = HashMap::new();
    for file in lake.live_files(&table).await.unwrap() {
        *out.entry(file.days.map(|(day, _)| day)).or_insert(0) += 1;
    }
    out
}

/// Compaction and a writer with its own connection pool, started together, many rounds:
/// every appended row survives exactly once, and a last compaction leaves one file per day.
async fn compaction_races_a_writer(dir: &std::path::Path, catalog: Option<&str>) {
    let lake = Lakehouse::open(&config(dir, catalog)).await.unwrap();
    lake.create_tables().await.unwrap();
    let writer = Lakehouse::open(&config(dir, catalog)).await.unwrap();
    let mut expected = Vec::new();
    let mut replans = 0;
    for round in 0..15 {
        for i in 0..3 {
            let tag = format!("seed-r{round}-{i}");
            support::append(&lake, &[tag.as_str()], 1 + i % 2)
                .await
                .unwrap();
            expected.push(tag);
        }
        let writing = async {
            let mut written = Vec::new();
            for i in 0..4 {
                let tag = format!("race-r{round}-{i}");
                support::append(&writer, &[tag.as_str()], 1 + i % 3)
                    .await
                    .unwrap();
                written.push(tag);
            }
            written
        };
        let policy = policy();
        let (compacted, written) = tokio::join!(lake.compact(&QUARANTINE, &policy, None), writing);
        let compacted = compacted
            .unwrap()
            .expect("there were small files to compact");
        replans += compacted.attempts - 1;
        expected.extend(written);
        expected.sort();
        assert_eq!(tags(&lake).await, expected, "round {round}");
    }
    eprintln!("compaction re-planned {replans} times over 15 rounds");
    lake.compact(&QUARANTINE, &policy(), None).await.unwrap();
    assert_eq!(tags(&lake).await, expected);
    let per_day = files_per_day(&lake).await;
    assert_eq!(per_day.len(), 3);
    assert!(per_day.values().all(|n| *n == 1), "{per_day:?}");
    // Nothing left to compact: no commit.
    assert!(
        lake.compact(&QUARANTINE, &policy(), None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_racing_a_concurrent_writer_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    compaction_races_a_writer(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_racing_a_concurrent_writer_on_postgres() {
    let Some(database) = support::TempDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    compaction_races_a_writer(dir.path(), Some(&database.url)).await;
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_files_keep_the_data_sequence_numbers_of_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lakehouse::open(&config(dir.path(), None)).await.unwrap();
    lake.create_tables().await.unwrap();
    for i in 0..4 {
        support::append(&lake, &[format!("t{i}").as_str()], 1)
            .await
            .unwrap();
    }
    let table = lake.load(&QUARANTINE).await.unwrap();
    let before = lake.live_files(&table).await.unwrap();
    let newest = before.iter().map(|f| f.sequence_number).max().unwrap();
    let outcome = lake
        .compact(&QUARANTINE, &policy(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((outcome.removed_files, outcome.added_files), (4, 1));
    let table = lake.load(&QUARANTINE).await.unwrap();
    let after = lake.live_files(&table).await.unwrap();
    assert_eq!(after.len(), 1);
    // The snapshot is newer, but the rows are as new as the newest input, no newer.
    assert_eq!(after[0].sequence_number, newest);
    assert!(
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .sequence_number()
            > newest
    );
    // The replace merged the manifests.
    let snapshot = table.metadata().current_snapshot().unwrap();
    let list = table.manifest_list_reader(snapshot).load().await.unwrap();
    assert_eq!(
        list.entries().len(),
        2,
        "one rewritten manifest and one for the new file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_orphan_removal_keep_every_live_snapshot_readable() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lakehouse::open(&config(dir.path(), None)).await.unwrap();
    lake.create_tables().await.unwrap();
    for i in 0..10 {
        support::append(&lake, &[format!("t{i}").as_str()], 1 + i % 2)
            .await
            .unwrap();
    }
    lake.compact(&QUARANTINE, &policy(), None)
        .await
        .unwrap()
        .unwrap();
    support::append(&lake, &["after"], 1).await.unwrap();
    let data_dir = dir.path().join("warehouse/bronze/quarantine/data");
    let stray = data_dir.join("stray-never-committed.parquet");
    std::fs::write(&stray, b"not referenced").unwrap();

    // Default ages: the snapshots and the stray file are young, nothing goes.
    let now = now_micros();
    assert_eq!(
        lake.expire_snapshots(&QUARANTINE, &policy(), now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        lake.remove_orphans(&QUARANTINE, &policy(), now)
            .await
            .unwrap()
            .files,
        0
    );
    assert!(stray.exists());

    // A referenced file missing from storage stops orphan removal before it deletes anything.
    let table = lake.load(&QUARANTINE).await.unwrap();
    let live = lake.live_files(&table).await.unwrap();
    let victim = live[0].path().trim_start_matches("file://").to_string();
    let saved = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let aggressive = MaintenancePolicy {
        snapshot_max_age_micros: 0,
        snapshots_kept: 2,
        orphan_min_age_micros: 0,
        ..policy()
    };
    let later = now + 1_000_000;
    assert!(
        lake.remove_orphans(&QUARANTINE, &aggressive, later)
            .await
            .is_err()
    );
    assert!(stray.exists());
    std::fs::write(&victim, saved).unwrap();

    // Everything old: keep the compaction and the append after it (2 of 12 snapshots); remove
    // what only the other 10 referenced: 10 manifest lists, the 10 appends' manifests, the 10
    // data files compaction replaced, and the stray file.
    assert_eq!(table.metadata().snapshots().len(), 12);
    let expired = lake
        .expire_snapshots(&QUARANTINE, &aggressive, later)
        .await
        .unwrap();
    assert_eq!(expired, 10);
    let orphans = lake
        .remove_orphans(&QUARANTINE, &aggressive, later)
        .await
        .unwrap();
    assert!(!stray.exists());
    assert_eq!(orphans.files, 31, "{orphans:?}");
    let table = lake.load(&QUARANTINE).await.unwrap();
    assert_eq!(table.metadata().snapshots().len(), 2);
    for snapshot in table.metadata().snapshots() {
        let files = lake.snapshot_files(&table, snapshot).await.unwrap();
        let rows: Vec<QuarantineRow> = lake.read_rows(&table, &files).await.unwrap();
        let total: usize = snapshot.summary().additional_properties["total-records"]
            .parse()
            .unwrap();
        assert_eq!(rows.len(), total);
    }
    let mut expected: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    expected.push("after".into());
    expected.sort();
    assert_eq!(tags(&lake).await, expected);
    // A second pass finds nothing more to do.
    assert_eq!(
        lake.expire_snapshots(&QUARANTINE, &aggressive, later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        lake.remove_orphans(&QUARANTINE, &aggressive, later)
            .await
            .unwrap()
            .files,
        0
    );
}
