//! Our compare-and-swap commit against a real SQLite catalog and warehouse in a temp dir:
//! conflicts re-plan, stale removals re-plan, exhausted retries fail loudly, concurrent
//! writers all land, overwrites replace exactly the planned files.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use bakehouse::adapters::lakehouse::{CommitPlan, Lakehouse, Operation, tables::QUARANTINE};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::records::QuarantineRow;
use bakehouse::error::StorageError;

fn config(dir: &std::path::Path, attempts: &str) -> Config {
    // A `postgres.url` file in the folder switches the catalog to that PostgreSQL database.
    let catalog = std::fs::read_to_string(dir.join("postgres.url"))
        .unwrap_or_else(|_| format!("sqlite://{}/catalog.db", dir.display()));
    let overrides = Overrides {
        warehouse: Some(format!("file://{}/warehouse", dir.display())),
        catalog: Some(catalog),
    };
    Config::from_lookup(&overrides, |name| {
        (name == "BAKEHOUSE_COMMIT_ATTEMPTS").then(|| attempts.to_string())
    })
    .unwrap()
}

/// A folder whose lakes (see [`config`]) use a fresh database on the PostgreSQL server `make
/// test` starts; `None` (the test skips) when the server is not configured, outside CI.
async fn postgres_dir() -> Option<(support::TempDatabase, tempfile::TempDir)> {
    let database = support::TempDatabase::create().await?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("postgres.url"), &database.url).unwrap();
    Some((database, dir))
}

async fn lake(dir: &std::path::Path) -> Lakehouse {
    let lake = Lakehouse::open(&config(dir, "30")).await.unwrap();
    lake.create_tables().await.unwrap();
    lake
}

async fn tags(lake: &Lakehouse) -> Vec<String> {
    let table = lake.load(&QUARANTINE).await.unwrap();
    let files = lake.live_files(&table).await.unwrap();
    let mut tags: Vec<String> = lake
        .read_rows::<QuarantineRow>(&table, &files)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.source_ref)
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_replans_on_the_newer_table_and_keeps_both_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ours = lake(dir.path()).await;
    let theirs = Lakehouse::open(&config(dir.path(), "30")).await.unwrap();
    let calls = AtomicU32::new(0);
    let rows = vec![support::row("ours", 1)];
    let (ours, theirs, calls, rows) = (&ours, &theirs, &calls, &rows);
    let outcome = ours
        .commit_with(&QUARANTINE, move |table| async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Another writer lands between our plan and our swap.
                support::append(theirs, &["theirs"], 1).await?;
            }
            let add = ours.write_rows(&table, rows).await?;
            Ok(Some(CommitPlan {
                operation: Operation::Append,
                add,
                add_rewritten: Vec::new(),
                remove: vec![],
                properties: HashMap::new(),
                keep_added_on_conflict: false,
                added_spec: None,
            }))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.attempts, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(tags(ours).await, ["ours", "theirs"]);
    // The losing attempt's data file was deleted; only the two live files remain on disk.
    let data_dir = dir.path().join("warehouse/bronze/quarantine/data");
    let files = walk(&data_dir);
    assert_eq!(files.len(), 2, "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_file_someone_else_already_removed_replans() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    support::append(&lake, &["a"], 1).await.unwrap();
    support::append(&lake, &["b"], 2).await.unwrap();
    let stale = lake.load(&QUARANTINE).await.unwrap();
    let day_one: Vec<_> = lake
        .live_files(&stale)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.days == Some((1, 1)))
        .collect();
    assert_eq!(day_one.len(), 1);
    // A concurrent overwrite of day 1 removes that file first.
    let replacement = vec![support::row("a2", 1)];
    let (lake, day_one, replacement) = (&lake, &day_one, &replacement);
    lake.commit_with(&QUARANTINE, move |table| async move {
        let remove = lake
            .live_files(&table)
            .await?
            .into_iter()
            .filter(|f| f.path() == day_one[0].path())
            .collect();
        let add = lake.write_rows(&table, replacement).await?;
        Ok(Some(CommitPlan {
            operation: Operation::Overwrite,
            add,
            add_rewritten: Vec::new(),
            remove,
            properties: HashMap::new(),
            keep_added_on_conflict: false,
            added_spec: None,
        }))
    })
    .await
    .unwrap();
    // Our plan still names the old file on its first attempt: that must not land.
    let calls = AtomicU32::new(0);
    let mine = vec![support::row("a3", 1)];
    let (calls, mine) = (&calls, &mine);
    let outcome = lake
        .commit_with(&QUARANTINE, move |table| async move {
            let remove = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                day_one.clone()
            } else {
                lake.live_files(&table)
                    .await?
                    .into_iter()
                    .filter(|f| f.days == Some((1, 1)))
                    .collect()
            };
            let add = lake.write_rows(&table, mine).await?;
            Ok(Some(CommitPlan {
                operation: Operation::Overwrite,
                add,
                add_rewritten: Vec::new(),
                remove,
                properties: HashMap::new(),
                keep_added_on_conflict: false,
                added_spec: None,
            }))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            outcome.attempts,
            outcome.removed_files,
            outcome.added_records
        ),
        (2, 1, 1)
    );
    assert_eq!(tags(lake).await, ["a3", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_fail_loudly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path()).await;
    let impatient = Lakehouse::open(&config(dir.path(), "1")).await.unwrap();
    let other = Lakehouse::open(&config(dir.path(), "30")).await.unwrap();
    let rows = vec![support::row("never", 1)];
    let (impatient, other, rows) = (&impatient, &other, &rows);
    let result = impatient
        .commit_with(&QUARANTINE, move |table| async move {
            support::append(other, &["winner"], 1).await?;
            let add = impatient.write_rows(&table, rows).await?;
            Ok(Some(CommitPlan {
                operation: Operation::Append,
                add,
                add_rewritten: Vec::new(),
                remove: vec![],
                properties: HashMap::new(),
                keep_added_on_conflict: false,
                added_spec: None,
            }))
        })
        .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, StorageError::ConflictsExhausted { attempts: 1, .. }),
        "{error}"
    );
    assert!(error.is_retryable());
    assert_eq!(tags(other).await, ["winner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writers(dir.path()).await;
}

/// The same race on the PostgreSQL catalog that `make test` starts (`BAKEHOUSE_TEST_POSTGRES`
/// is the server's URL); each run gets a fresh database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_all_land_on_postgres() {
    let Some((database, dir)) = postgres_dir().await else {
        return;
    };
    concurrent_writers(dir.path()).await;
    database.drop().await;
}

/// Processes opening a new PostgreSQL catalog at once all open it: they race to create its
/// tables, and the losers find them on their next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_open_a_new_postgres_catalog_at_once() {
    let Some((database, dir)) = postgres_dir().await else {
        return;
    };
    let opening: Vec<_> = (0..8)
        .map(|_| {
            let config = config(dir.path(), "30");
            tokio::spawn(async move { Lakehouse::open(&config).await.map(|_| ()) })
        })
        .collect();
    for open in opening {
        let opened = open.await.unwrap();
        assert!(opened.is_ok(), "{opened:?}");
    }
    database.drop().await;
}

async fn concurrent_writers(dir: &std::path::Path) {
    lake(dir).await;
    // Eight writers with their own connection pools, in parallel tasks.
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let lake = Lakehouse::open(&config(dir, "200")).await.unwrap();
        tasks.push(tokio::spawn(async move {
            for commit in 0..5 {
                let tag = format!("w{writer}-c{commit}");
                support::append(&lake, &[tag.as_str()], 1 + commit % 2)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let lake = Lakehouse::open(&config(dir, "30")).await.unwrap();
    let got = tags(&lake).await;
    assert_eq!(got.len(), 40);
    let table = lake.load(&QUARANTINE).await.unwrap();
    assert_eq!(table.metadata().snapshots().len(), 40);
    assert_eq!(
        Lakehouse::snapshot_property(&table, "total-records"),
        Some("40")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_properties_are_carried_into_later_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    lake.commit_with(&QUARANTINE, move |_| async move {
        Ok(Some(CommitPlan {
            operation: Operation::Append,
            add: vec![],
            add_rewritten: Vec::new(),
            remove: vec![],
            properties: [
                (
                    "bakehouse.kafka-offsets".to_string(),
                    "{\"t/0\":5}".to_string(),
                ),
                ("other".to_string(), "x".to_string()),
            ]
            .into(),
            keep_added_on_conflict: false,
            added_spec: None,
        }))
    })
    .await
    .unwrap();
    support::append(&lake, &["later"], 1).await.unwrap();
    let table = lake.load(&QUARANTINE).await.unwrap();
    assert_eq!(
        Lakehouse::snapshot_property(&table, "bakehouse.kafka-offsets"),
        Some("{\"t/0\":5}")
    );
    assert_eq!(Lakehouse::snapshot_property(&table, "other"), None);
}
