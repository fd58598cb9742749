//! The maintenance function: run by an EventBridge schedule (SPEC §6).

use bakehouse::domain::time::now_micros;
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, maintenance};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// Runs every maintenance task once (dimensions, reports, compaction, expiry, orphans). The
/// scheduled event's content does not matter: the wall clock decides what is old.
///
/// # Errors
/// A storage error (retryable).
pub async fn handler(
    deps: &Deps,
    _event: LambdaEvent<Value>,
) -> Result<maintenance::MaintenanceReport, HandlerError> {
    maintenance::handle(deps, now_micros()).await
}
