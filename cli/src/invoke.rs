//! `bakehouse invoke FUNCTION --event FILE.json`: one handler on one AWS event document.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bakehouse::hops::Deps;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use serde_json::Value;
use serde_json::value::RawValue;

/// The functions `invoke` accepts.
pub const FUNCTIONS: [&str; 4] = [
    "ingest",
    "bronze-to-silver",
    "silver-to-gold",
    "maintenance",
];

/// Runs `function`'s handler on the event document and prints its result as JSON.
pub async fn run(deps: &Deps, function: &str, event: &Path) -> Result<()> {
    if !FUNCTIONS.contains(&function) {
        bail!(
            "unknown function {function:?}; accepted: {}",
            FUNCTIONS.join(", ")
        );
    }
    let text = std::fs::read_to_string(event)
        .with_context(|| format!("cannot read {}", event.display()))?;
    let payload =
        RawValue::from_string(text).with_context(|| format!("{} is not JSON", event.display()))?;
    // The ingest function takes the document's text as is (a Kafka batch can be 6 MB); the
    // others a JSON value.
    let value = |payload: &RawValue| -> Result<LambdaEvent<Value>> {
        let value = serde_json::from_str(payload.get())?;
        Ok(LambdaEvent::new(value, LambdaContext::default()))
    };
    let result = match function {
        "ingest" => {
            let event = LambdaEvent::new(payload, LambdaContext::default());
            serde_json::to_value(ingest::handler(deps, event).await?)?
        }
        "bronze-to-silver" => {
            serde_json::to_value(bronze_to_silver::handler(deps, value(&payload)?).await?)?
        }
        "silver-to-gold" => {
            serde_json::to_value(silver_to_gold::handler(deps, value(&payload)?).await?)?
        }
        "maintenance" => serde_json::to_value(maintenance::handler(deps, value(&payload)?).await?)?,
        other => bail!(
            "unknown function {other:?}; accepted: {}",
            FUNCTIONS.join(", ")
        ),
    };
    say!("{}", crate::to_json(&result)?);
    Ok(())
}
