//! The bronze-to-silver function: woken by S3 notifications of bronze metadata commits.

use bakehouse::adapters::events::parse_s3_event;
use bakehouse::adapters::lakehouse::CommitOutcome;
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, to_silver};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// Runs the bronze → silver hop until silver has caught up with bronze.
///
/// # Errors
/// An unsupported document, or a storage error (retryable).
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<Value>,
) -> Result<Vec<CommitOutcome>, HandlerError> {
    let event = parse_s3_event(event.payload).map_err(HandlerError::Event)?;
    to_silver::handle(deps, event.as_ref()).await
}
