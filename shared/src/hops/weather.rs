//! The external weather source (SPEC §2 External API): the scheduled pull that asks the weather
//! API for each store's daily weather and lands the answers under `landing/weather/`, and the
//! bronze → silver step of the `weather` dataset, where the latest pull of a store's day
//! replaces the row silver held (the other datasets keep their first delivery).

use std::collections::BTreeSet;

use futures::StreamExt;
use tracing::{info, warn};

use super::reference::{latest_snapshot, load_reference};
use super::{Deps, checkpoint, checkpoint_properties, new_source_files};
use crate::adapters::lakehouse::{CommitOutcome, CommitPlan, tables};
use crate::adapters::objects::write_object;
use crate::config::WeatherSettings;
use crate::domain::records::{BronzeStore, BronzeWeather, SilverWeather};
use crate::domain::time::{date_from_days, format_timestamp};
use crate::domain::weather::{DAILY_VARIABLES, landing_records, latest_per_day, weather_to_silver};
use crate::error::{HandlerError, StorageError};

/// What one pull did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PullSummary {
    /// The objects landed, one per store (`s3://…` or `file://…`).
    pub landed: Vec<String>,
    /// Stores of the reference snapshot without coordinates (not asked).
    pub stores_without_location: Vec<i32>,
    /// HTTP requests made, retries included.
    pub requests: usize,
    /// Stores whose requests all failed, each with the last reason.
    pub failed: Vec<String>,
}

impl PullSummary {
    /// The summary, or — when a store's pull failed — an error naming those stores (the other
    /// stores' objects have landed).
    ///
    /// # Errors
    /// [`HandlerError::Weather`] when a store's pull failed.
    pub fn into_result(self) -> Result<Self, HandlerError> {
        if self.failed.is_empty() {
            return Ok(self);
        }
        Err(HandlerError::Weather(format!(
            "{} of {} stores failed ({} landed): {}",
            self.failed.len(),
            self.failed.len() + self.landed.len(),
            self.landed.len(),
            self.failed.join("; ")
        )))
    }
}

/// Asks the weather API for the daily weather of every store with coordinates in the latest
/// stores snapshot, over the days `from..=to` (days since the epoch), and lands each answer as
/// a JSON lines object under `<landing>/weather/`. A request is retried with backoff on a
/// network error, a timeout, 429 or 5xx; a store whose requests all fail is listed in
/// `failed` (see [`PullSummary::into_result`]) and nothing of it lands, so the next pull (its
/// window overlaps) fills the gap. A body that is not a daily answer lands as one record that
/// ingest quarantines.
///
/// # Errors
/// Storage errors, or an HTTP client that cannot be built.
pub async fn pull(deps: &Deps, from: i32, to: i32, now: i64) -> Result<PullSummary, HandlerError> {
    let settings = &deps.config.weather;
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .build()
        .map_err(|e| HandlerError::Weather(format!("cannot build the HTTP client: {e}")))?;
    let stores: Vec<BronzeStore> = latest_snapshot(&deps.lake, &tables::BRONZE_STORES).await?;
    let mut summary = PullSummary::default();
    let mut located = Vec::new();
    for store in &stores {
        match (store.latitude, store.longitude) {
            (Some(latitude), Some(longitude)) => {
                located.push((store.store_id, latitude, longitude))
            }
            _ => summary.stores_without_location.push(store.store_id),
        }
    }
    // A few stores at a time: a slow or failing store does not hold up the others.
    let client = &client;
    let mut answers: Vec<(i32, Result<String, String>, usize)> =
        futures::stream::iter(located.into_iter().map(
            |(store_id, latitude, longitude)| async move {
                let query = [
                    ("latitude", latitude.to_string()),
                    ("longitude", longitude.to_string()),
                    ("daily", DAILY_VARIABLES.to_string()),
                    ("timezone", "UTC".to_string()),
                    ("start_date", date_from_days(from).to_string()),
                    ("end_date", date_from_days(to).to_string()),
                ];
                let mut requests = 0;
                let answer = fetch(client, settings, &query, &mut requests).await;
                (store_id, answer, requests)
            },
        ))
        .buffer_unordered(STORES_AT_ONCE)
        .collect()
        .await;
    answers.sort_by_key(|(store_id, _, _)| *store_id);
    for (store_id, answer, requests) in answers {
        summary.requests += requests;
        match answer {
            Ok(body) => {
                let lines: Vec<String> = landing_records(&body, store_id, now)
                    .iter()
                    .map(serde_json::Value::to_string)
                    .collect();
                let location = format!(
                    "{}/weather/{}-store-{store_id}-{}.jsonl",
                    deps.config.landing,
                    date_from_days(from),
                    format_timestamp(now).replace(':', ""),
                );
                let text = lines.join("\n") + "\n";
                write_object(&deps.lake, &location, text.into()).await?;
                summary.landed.push(location);
            }
            Err(reason) => {
                warn!(store = store_id, %reason, "Weather pull failed.");
                summary.failed.push(format!("store {store_id}: {reason}"));
            }
        }
    }
    info!(
        landed = summary.landed.len(),
        failed = summary.failed.len(),
        requests = summary.requests,
        "Weather pulled."
    );
    Ok(summary)
}

/// Stores asked at once.
const STORES_AT_ONCE: usize = 4;

/// One answer of the API, after up to `settings.attempts` tries; the error names the endpoint
/// (without its query, which may carry a key) and the last failure.
async fn fetch(
    client: &reqwest::Client,
    settings: &WeatherSettings,
    query: &[(&str, String)],
    requests: &mut usize,
) -> Result<String, String> {
    let endpoint = settings.endpoint();
    let url = url::Url::parse_with_params(&settings.url, query)
        .map_err(|e| format!("{endpoint}: not a URL: {e}"))?;
    let mut last = String::new();
    for attempt in 1..=settings.attempts {
        if attempt > 1 {
            tokio::time::sleep(settings.backoff * 2u32.pow(attempt - 2)).await;
        }
        *requests += 1;
        let response = client.get(url.clone()).send().await;
        let retry = match response {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(body) => return Ok(body),
                Err(e) => {
                    last = format!("reading the body failed: {}", e.without_url());
                    true
                }
            },
            Ok(r) => {
                let status = r.status();
                let body: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                last = format!("HTTP {status}: {body}");
                status.is_server_error() || status.as_u16() == 429
            }
            Err(e) if e.is_timeout() => {
                last = format!("no answer within {:?}", settings.timeout);
                true
            }
            Err(e) => {
                last = format!("request failed: {}", e.without_url());
                true
            }
        };
        if !retry {
            break;
        }
    }
    Err(format!("{endpoint}: {last}"))
}

/// Brings `silver.weather` up to date with `bronze.weather`: the new bronze rows, scored, and
/// the rows silver holds for the dates they touch become one row per store and date — the
/// latest pull — and replace those dates' files, with the checkpoint, in one commit.
///
/// # Errors
/// Storage errors.
pub async fn refine(deps: &Deps) -> Result<Option<CommitOutcome>, StorageError> {
    let lake = &deps.lake;
    let reference = &load_reference(lake).await?;
    lake.commit_with(&tables::SILVER_WEATHER, move |silver| async move {
        let Some((bronze, files)) =
            new_source_files(lake, &tables::BRONZE_WEATHER, checkpoint(&silver)).await?
        else {
            return Ok(None);
        };
        let new: Vec<BronzeWeather> = lake
            .read_rows_without(&bronze, &files, &["payload"])
            .await?;
        let dates: BTreeSet<i32> = new.iter().map(|w| w.date).collect();
        let held = lake.files_of_days(&silver, &dates).await?;
        let held_rows: Vec<SilverWeather> = lake.read_rows(&silver, &held).await?;
        let rows = latest_per_day(
            held_rows
                .into_iter()
                .chain(new.iter().map(|w| weather_to_silver(w, reference))),
        );
        let add = lake.write_rows(&silver, &rows).await?;
        Ok(Some(CommitPlan::overwrite(
            add,
            held,
            checkpoint_properties(&bronze),
        )))
    })
    .await
}

/// The default days of a scheduled pull around `today`: `days_back` observed days (an observed
/// day replaces its forecast) through `days_ahead` forecast days.
pub fn default_window(settings: &WeatherSettings, today: i32) -> (i32, i32) {
    (today - settings.days_back, today + settings.days_ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_reaches_back_and_ahead() {
        let settings = WeatherSettings::default();
        assert_eq!(default_window(&settings, 100), (98, 106));
    }
}
