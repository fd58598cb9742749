//! The ingest function: a Kafka batch or an S3 `landing/` notification → bronze and quarantine.

use bakehouse::adapters::events::parse_ingest_event;
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, ingest};
use lambda_runtime::LambdaEvent;
use serde_json::value::RawValue;

/// Runs the ingest hop on one invocation document.
///
/// # Errors
/// An unsupported document, or a storage error (retryable).
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<ingest::IngestSummary, HandlerError> {
    let parsed = parse_ingest_event(event.payload.get()).map_err(HandlerError::Event)?;
    drop(event); // the document's text (up to 6 MB), parsed into `parsed`
    ingest::handle(deps, parsed).await
}
