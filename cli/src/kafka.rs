//! What `produce` and `local` check of a Kafka broker before they start: that it answers and
//! holds the event topics, so a wrong address or a missing topic is a clear error within
//! seconds instead of a stall.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bakehouse::domain::dataset::Dataset;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long the broker has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The event topics' names under `prefix`.
pub fn event_topics(prefix: &str) -> Vec<String> {
    Dataset::EVENTS
        .iter()
        .map(|d| format!("{prefix}{}", d.name()))
        .collect()
}

/// Fails unless the broker at `servers` answers within a few seconds and has every topic of
/// `topics`, naming what it tried and what it found.
pub async fn check_topics(servers: &str, topics: Vec<String>) -> Result<()> {
    let servers = servers.to_string();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .context("cannot create the Kafka client")?;
        let metadata = client.fetch_metadata(None, ANSWER_WITHIN).map_err(|e| {
            anyhow::anyhow!(
                "no Kafka broker answered at {servers} within {} s ({e}); start one (`make up`) \
                 or set --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS",
                ANSWER_WITHIN.as_secs()
            )
        })?;
        let existing: Vec<&str> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name())
            .collect();
        let missing: Vec<&String> = topics
            .iter()
            .filter(|t| !existing.contains(&t.as_str()))
            .collect();
        if !missing.is_empty() {
            let mut found: Vec<&str> = existing
                .into_iter()
                .filter(|t| !t.starts_with("__"))
                .collect();
            found.sort_unstable();
            bail!(
                "the Kafka broker at {servers} has no topic {} (it has: {}); create it (`make up` \
                 creates the three event topics) or pass the --topic-prefix it was created with",
                missing
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            );
        }
        Ok(())
    })
    .await?
}
