//! Reading input objects: a local file path, `file:///…`, or `s3://bucket/key` through the
//! lakehouse's storage settings.

use super::iceberg::Lakehouse;
use crate::error::StorageError;

/// Reads a whole object.
///
/// # Errors
/// [`StorageError::Object`] naming the object.
pub async fn read_object(lake: &Lakehouse, location: &str) -> Result<Vec<u8>, StorageError> {
    let failed = |message: String| StorageError::Object {
        path: location.to_string(),
        message,
    };
    if location.starts_with("s3://") || location.starts_with("file://") {
        let input = lake
            .file_io()
            .new_input(location)
            .map_err(|e| failed(e.to_string()))?;
        Ok(input
            .read()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_vec())
    } else {
        tokio::fs::read(location)
            .await
            .map_err(|e| failed(e.to_string()))
    }
}
