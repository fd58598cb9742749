//! The silver-to-gold function: woken by S3 notifications of silver metadata commits.

use bakehouse::adapters::events::parse_s3_event;
use bakehouse::adapters::lakehouse::CommitOutcome;
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, to_gold};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// Recomputes the gold partitions of the business dates new silver rows touch.
///
/// # Errors
/// An unsupported document, a storage error (retryable), or an overflowing aggregate.
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<Value>,
) -> Result<Vec<CommitOutcome>, HandlerError> {
    let event = parse_s3_event(event.payload).map_err(HandlerError::Event)?;
    to_gold::handle(deps, event.as_ref()).await
}
