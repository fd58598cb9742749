//! CloudWatch Embedded Metric Format (EMF): the JSON lines each handler prints once per
//! invocation, which CloudWatch Logs turns into metrics under the `Bakehouse` namespace
//! without an API call. One line per dimension set: the invocation (`Function`), each table
//! it wrote (`Function`, `Table`) and each quarantine reason (`Function`, `Reason`).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::adapters::lakehouse::CommitOutcome;
use crate::hops::ingest::IngestSummary;
use crate::hops::maintenance::MaintenanceReport;
use crate::hops::weather::PullSummary;

/// The CloudWatch namespace of every Bakehouse metric.
pub const NAMESPACE: &str = "Bakehouse";

/// A metric's CloudWatch unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Count,
    Milliseconds,
    /// A plain number (the average quality score).
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// The figures of one dimension set: its dimension values and its metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSet {
    pub dimensions: Vec<(&'static str, String)>,
    pub metrics: Vec<(&'static str, Unit, f64)>,
}

impl MetricSet {
    fn new(function: &str) -> Self {
        MetricSet {
            dimensions: vec![("Function", function.to_string())],
            metrics: Vec::new(),
        }
    }

    fn with(mut self, dimension: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((dimension, value.into()));
        self
    }

    fn count(mut self, name: &'static str, value: impl TryInto<u64>) -> Self {
        let value = value.try_into().unwrap_or(u64::MAX) as f64;
        self.metrics.push((name, Unit::Count, value));
        self
    }

    /// The EMF document of this set, stamped `timestamp_ms`.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (key, value) in &self.dimensions {
            doc.insert((*key).into(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            doc.insert((*name).into(), json!(value));
        }
        Value::Object(doc)
    }
}

/// A handler's result that can be told as metrics.
pub trait Measured {
    /// The metric sets of one invocation of `function` (besides its duration).
    fn metric_sets(&self, function: &str) -> Vec<MetricSet>;
}

/// The EMF lines of one invocation: the result's sets, then the invocation's own line
/// (`Invocations`, `Errors`, `Duration`).
pub fn invocation_lines<T: Measured, E>(
    function: &str,
    result: &Result<T, E>,
    elapsed: Duration,
    timestamp_ms: i64,
) -> Vec<String> {
    let mut sets = match result {
        Ok(value) => value.metric_sets(function),
        Err(_) => Vec::new(),
    };
    let mut invocation = MetricSet::new(function)
        .count("Invocations", 1u64)
        .count("Errors", u64::from(result.is_err()));
    invocation.metrics.push((
        "Duration",
        Unit::Milliseconds,
        elapsed.as_secs_f64() * 1000.0,
    ));
    sets.push(invocation);
    sets.iter()
        .map(|set| set.to_emf(timestamp_ms).to_string())
        .collect()
}

/// Prints the EMF lines of one invocation on stdout (where Lambda's log agent picks them up).
pub fn emit<T: Measured, E>(function: &str, result: &Result<T, E>, elapsed: Duration) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    for line in invocation_lines(function, result, elapsed, now_ms) {
        println!("{line}");
    }
}

/// Runs one invocation's work and emits its lines: what a function's entry point wraps its
/// handler in.
pub async fn measured<T: Measured, E>(
    function: &str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = work.await;
    emit(function, &result, started.elapsed());
    result
}

impl Measured for IngestSummary {
    fn metric_sets(&self, function: &str) -> Vec<MetricSet> {
        let mut sets = vec![
            MetricSet::new(function)
                .count("RecordsIn", self.records)
                .count("Quarantined", self.quarantined.values().sum::<usize>())
                .count("Commits", self.commits)
                .count("CommitRetries", self.commit_retries)
                .count("AlreadyCommitted", self.already_committed),
        ];
        sets.extend(self.committed.iter().map(|(table, rows)| {
            MetricSet::new(function)
                .with("Table", table)
                .count("RecordsOut", *rows)
        }));
        sets.extend(self.quarantined.iter().map(|(reason, records)| {
            MetricSet::new(function)
                .with("Reason", reason)
                .count("Quarantined", *records)
        }));
        sets
    }
}

/// The silver and gold hops: one set per table committed.
impl Measured for Vec<CommitOutcome> {
    fn metric_sets(&self, function: &str) -> Vec<MetricSet> {
        self.iter()
            .map(|outcome| {
                let mut set = MetricSet::new(function)
                    .with("Table", &outcome.table)
                    .count("RecordsOut", outcome.added_records)
                    .count("RecordsReplaced", outcome.removed_records)
                    .count("FilesAdded", outcome.added_files)
                    .count("CommitRetries", outcome.attempts.saturating_sub(1));
                if let Some(rows) = &outcome.figures {
                    set = set
                        .count("RecordsIn", rows.read)
                        .count("Duplicates", rows.duplicates)
                        .count("Late", rows.late)
                        .count("TooLate", rows.too_late)
                        .count("BelowMinimumScore", rows.below_minimum);
                    if let Some(avg) = rows.avg_quality_score {
                        set.metrics.push(("AvgQualityScore", Unit::None, avg));
                    }
                }
                set
            })
            .collect()
    }
}

impl Measured for MaintenanceReport {
    fn metric_sets(&self, function: &str) -> Vec<MetricSet> {
        let mut sets = vec![MetricSet::new(function).count("Commits", self.commits)];
        sets.extend(self.tables.iter().filter(|t| t.commits > 0).map(|t| {
            MetricSet::new(function)
                .with("Table", &t.table)
                .count("FilesCompacted", t.files_compacted)
                .count("FilesWritten", t.files_written)
                .count("SnapshotsExpired", t.snapshots_expired)
                .count("OrphansDeleted", t.orphans_deleted)
                .count("VersionsOpened", t.versions_opened)
                .count("VersionsClosed", t.versions_closed)
        }));
        sets
    }
}

impl Measured for PullSummary {
    fn metric_sets(&self, function: &str) -> Vec<MetricSet> {
        vec![
            MetricSet::new(function)
                .count("ObjectsLanded", self.landed.len())
                .count("Requests", self.requests)
                .count("StoresWithoutLocation", self.stores_without_location.len()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::reports::RowFigures;

    /// Every metric an EMF line declares is a number at its top level, and so is every
    /// dimension a string: what CloudWatch requires to extract it.
    fn assert_valid_emf(line: &str) -> Value {
        let doc: Value = serde_json::from_str(line).expect("one JSON document per line");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for name in directive["Dimensions"][0].as_array().expect("dimensions") {
            assert!(doc[name.as_str().expect("name")].is_string(), "{line}");
        }
        for metric in directive["Metrics"].as_array().expect("metrics") {
            assert!(
                doc[metric["Name"].as_str().expect("name")].is_number(),
                "{line}"
            );
        }
        assert!(doc["_aws"]["Timestamp"].is_i64());
        doc
    }

    #[test]
    fn ingest_lines_count_records_tables_and_reasons() {
        let summary = IngestSummary {
            records: 10,
            committed: BTreeMap::from([
                ("bronze.quarantine".into(), 3),
                ("bronze.sales_events".into(), 7),
            ]),
            quarantined: BTreeMap::from([("invalid_json".into(), 2), ("missing_field".into(), 1)]),
            already_committed: 0,
            commits: 2,
            commit_retries: 1,
        };
        let result: Result<_, ()> = Ok(summary);
        let lines = invocation_lines("ingest", &result, Duration::from_millis(12), 1_700);
        let docs: Vec<Value> = lines.iter().map(|l| assert_valid_emf(l)).collect();
        assert_eq!(docs.len(), 6, "{lines:#?}");
        assert_eq!(docs[0]["RecordsIn"], 10.0);
        assert_eq!(docs[0]["Quarantined"], 3.0);
        assert_eq!(docs[0]["CommitRetries"], 1.0);
        assert_eq!(docs[2]["Table"], "bronze.sales_events");
        assert_eq!(docs[2]["RecordsOut"], 7.0);
        assert_eq!(docs[3]["Reason"], "invalid_json");
        assert_eq!(docs[3]["Quarantined"], 2.0);
        assert_eq!(docs[5]["Function"], "ingest");
        assert_eq!(docs[5]["Duration"], 12.0);
        assert_eq!(docs[5]["Errors"], 0.0);
        assert_eq!(docs[5]["_aws"]["Timestamp"], 1_700);
    }

    #[test]
    fn silver_lines_carry_quality_and_lateness_and_a_failure_is_an_error() {
        let outcome = CommitOutcome {
            table: "silver.sales".into(),
            snapshot_id: 1,
            sequence_number: 2,
            added_files: 1,
            removed_files: 0,
            added_records: 8,
            removed_records: 0,
            attempts: 3,
            figures: Some(RowFigures {
                read: 9,
                duplicates: 1,
                late: 2,
                too_late: 1,
                below_minimum: 1,
                avg_quality_score: Some(87.5),
            }),
        };
        let ok: Result<_, ()> = Ok(vec![outcome]);
        let lines = invocation_lines("bronze-to-silver", &ok, Duration::ZERO, 0);
        let table = assert_valid_emf(&lines[0]);
        assert_eq!(table["Table"], "silver.sales");
        assert_eq!(
            (table["RecordsIn"].clone(), table["RecordsOut"].clone()),
            (json!(9.0), json!(8.0))
        );
        assert_eq!(table["CommitRetries"], 2.0);
        assert_eq!(table["TooLate"], 1.0);
        assert_eq!(table["AvgQualityScore"], 87.5);

        let failed: Result<Vec<CommitOutcome>, ()> = Err(());
        let lines = invocation_lines("bronze-to-silver", &failed, Duration::ZERO, 0);
        assert_eq!(lines.len(), 1);
        assert_eq!(assert_valid_emf(&lines[0])["Errors"], 1.0);
    }
}
