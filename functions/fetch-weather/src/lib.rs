//! The weather function: run by an EventBridge schedule (SPEC §2 External API), it lands each
//! store's daily weather under `landing/weather/`, where the ingest function takes it.

use bakehouse::domain::time::{date_of, now_micros};
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, weather};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// Pulls the default window around today (`BAKEHOUSE_WEATHER_DAYS_BACK` past days through
/// `BAKEHOUSE_WEATHER_DAYS_AHEAD` days ahead) for every store with coordinates. The scheduled
/// event's content does not matter.
///
/// # Errors
/// Storage errors, or the stores whose pull failed after its retries (the others landed).
pub async fn handler(
    deps: &Deps,
    _event: LambdaEvent<Value>,
) -> Result<weather::PullSummary, HandlerError> {
    let now = now_micros();
    let (from, to) = weather::default_window(&deps.config.weather, date_of(now));
    weather::pull(deps, from, to, now).await?.into_result()
}
