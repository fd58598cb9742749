//! Objects outside Iceberg's own reads: reading an input object in pieces (a local file path,
//! `file:///…`, or `s3://bucket/key`) and listing a prefix, through the lakehouse's storage
//! settings.

use std::time::SystemTime;

use bytes::Bytes;
use iceberg::io::FileRead;
use opendal::Operator;
use std::io::Read;

use super::lakehouse::Lakehouse;
use crate::error::StorageError;

/// One object found by [`list_objects`].
#[derive(Clone, Debug, PartialEq)]
pub struct ListedObject {
    /// `file:///…` or `s3://bucket/key`.
    pub location: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Every object under `location` (a `file:///` folder or an `s3://bucket/prefix`), recursively,
/// sorted by location.
///
/// # Errors
/// [`StorageError::Object`] when the listing fails (a missing folder is an empty listing).
pub async fn list_objects(
    lake: &Lakehouse,
    location: &str,
) -> Result<Vec<ListedObject>, StorageError> {
    let location = location.trim_end_matches('/');
    let failed = |message: String| StorageError::Object {
        path: location.to_string(),
        message,
    };
    let (operator, prefix) = operator_for(lake, location).map_err(failed)?;
    let root = location.strip_suffix(prefix.as_str()).unwrap_or(location);
    let entries = match operator
        .list_with(&format!("{prefix}/"))
        .recursive(true)
        .await
    {
        Ok(entries) => entries,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(failed(e.to_string())),
    };
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| e.metadata().is_file()) {
        let meta = entry.metadata();
        let mut modified = meta.last_modified().map(SystemTime::from);
        let mut size = meta.content_length();
        if modified.is_none()
            && let Ok(stat) = operator.stat(entry.path()).await
        {
            modified = stat.last_modified().map(SystemTime::from);
            size = stat.content_length();
        }
        out.push(ListedObject {
            location: format!("{root}{}", entry.path()),
            size,
            modified,
        });
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// An operator that can list `location`, and the location's path within it.
fn operator_for(lake: &Lakehouse, location: &str) -> Result<(Operator, String), String> {
    if let Some(path) = location.strip_prefix("file://") {
        let mut config = opendal::services::FsConfig::default();
        config.root = Some("/".to_string());
        let operator = Operator::from_config(config)
            .map_err(|e| e.to_string())?
            .finish();
        // Relative to the root "/": `file://` + "/" + path is the location again.
        return Ok((operator, path.trim_start_matches('/').to_string()));
    }
    let rest = location
        .strip_prefix("s3://")
        .ok_or_else(|| "only file:// and s3:// locations can be listed".to_string())?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let get = |k: &str| lake.storage().get(k).cloned();
    let mut config = opendal::services::S3Config::default();
    config.bucket = bucket.to_string();
    config.endpoint = get("s3.endpoint");
    config.region = get("s3.region").or_else(|| Some("us-east-1".to_string()));
    config.access_key_id = get("s3.access-key-id");
    config.secret_access_key = get("s3.secret-access-key");
    config.session_token = get("s3.session-token");
    config.enable_virtual_host_style = get("s3.path-style-access").as_deref() != Some("true");
    let operator = Operator::from_config(config)
        .map_err(|e| e.to_string())?
        .finish();
    Ok((operator, key.to_string()))
}

/// Writes a small object whole (`s3://…` or `file://…`).
///
/// # Errors
/// [`StorageError::Object`] naming the object.
pub async fn write_object(
    lake: &Lakehouse,
    location: &str,
    content: Bytes,
) -> Result<(), StorageError> {
    let failed = |e: iceberg::Error| StorageError::Object {
        path: location.to_string(),
        message: e.to_string(),
    };
    lake.file_io()
        .new_output(location)
        .map_err(failed)?
        .write(content)
        .await
        .map_err(failed)
}

/// An input object read in pieces, so that ingesting it never holds it whole.
pub enum ObjectReader {
    /// Bytes handed over whole.
    Memory(Option<Bytes>),
    /// An object of the lakehouse's storage (`s3://…`, `file://…`), read by ranges.
    Storage {
        location: String,
        file: Box<dyn FileRead>,
        offset: u64,
        size: u64,
    },
    /// A local file given by path (read on a blocking thread).
    Local {
        location: String,
        file: std::fs::File,
    },
}

impl ObjectReader {
    /// Opens a local path, `file:///…` or `s3://bucket/key` for reading.
    ///
    /// # Errors
    /// [`StorageError::Object`] naming the object (missing, unreadable).
    pub async fn open(lake: &Lakehouse, location: &str) -> Result<Self, StorageError> {
        let failed = |message: String| StorageError::Object {
            path: location.to_string(),
            message,
        };
        if location.starts_with("s3://") && !lake.storage().contains_key("s3.region") {
            return Err(failed(
                "no S3 region is set (AWS_REGION, with AWS_ENDPOINT_URL for an S3-compatible \
                 server); embedded, set BAKEHOUSE_OBJECT_ROOT=file:///path to read a notified \
                 s3://bucket/key from path/bucket/key"
                    .to_string(),
            ));
        }
        if location.starts_with("s3://") || location.starts_with("file://") {
            let input = lake
                .file_io()
                .new_input(location)
                .map_err(|e| failed(e.to_string()))?;
            let size = input
                .metadata()
                .await
                .map_err(|e| failed(e.to_string()))?
                .size;
            let file = input.reader().await.map_err(|e| failed(e.to_string()))?;
            Ok(ObjectReader::Storage {
                location: location.to_string(),
                file,
                offset: 0,
                size,
            })
        } else {
            let file = std::fs::File::open(location).map_err(|e| failed(e.to_string()))?;
            Ok(ObjectReader::Local {
                location: location.to_string(),
                file,
            })
        }
    }

    /// The object's size in bytes (`None` when a local file's metadata cannot be read).
    pub fn size(&self) -> Option<u64> {
        match self {
            ObjectReader::Memory(bytes) => Some(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            ObjectReader::Storage { size, .. } => Some(*size),
            ObjectReader::Local { file, .. } => file.metadata().ok().map(|m| m.len()),
        }
    }

    /// What tells this object's content apart from an earlier one at the same key without
    /// reading it: S3's ETag, else the modification time (`None` for bytes handed over whole,
    /// or a store that keeps neither).
    ///
    /// # Errors
    /// [`StorageError::Object`] naming the object when its metadata cannot be read.
    pub async fn version(&self, lake: &Lakehouse) -> Result<Option<String>, StorageError> {
        let failed = |location: &str, message: String| StorageError::Object {
            path: location.to_string(),
            message,
        };
        match self {
            ObjectReader::Memory(_) => Ok(None),
            ObjectReader::Storage { location, .. } => {
                let (operator, path) =
                    operator_for(lake, location).map_err(|e| failed(location, e))?;
                let stat = operator
                    .stat(&path)
                    .await
                    .map_err(|e| failed(location, e.to_string()))?;
                let modified = || stat.last_modified().map(|at| at.to_string());
                Ok(stat.etag().map(str::to_string).or_else(modified))
            }
            ObjectReader::Local { location, file } => {
                let modified = file.metadata().and_then(|m| m.modified());
                let modified = modified.map_err(|e| failed(location, e.to_string()))?;
                Ok(Some(format!("{modified:?}")))
            }
        }
    }

    /// The next piece of at most `max` bytes (`max` > 0), or `None` at the end.
    ///
    /// # Errors
    /// [`StorageError::Object`] naming the object.
    pub async fn next(&mut self, max: usize) -> Result<Option<Bytes>, StorageError> {
        let failed = |location: &str, message: String| StorageError::Object {
            path: location.to_string(),
            message,
        };
        match self {
            ObjectReader::Memory(bytes) => Ok(bytes.take().filter(|b| !b.is_empty())),
            ObjectReader::Storage {
                location,
                file,
                offset,
                size,
            } => {
                if *offset >= *size {
                    return Ok(None);
                }
                let end = (*offset + max as u64).min(*size);
                let bytes = (**file)
                    .read(*offset..end)
                    .await
                    .map_err(|e| failed(location, e.to_string()))?;
                *offset = end;
                Ok(Some(bytes))
            }
            ObjectReader::Local { location, file } => {
                // A duplicate handle shares the file's offset, so reads continue in order.
                let handle = file
                    .try_clone()
                    .map_err(|e| failed(location, e.to_string()))?;
                let read = tokio::task::spawn_blocking(move || {
                    let mut piece = Vec::with_capacity(max);
                    handle
                        .take(max as u64)
                        .read_to_end(&mut piece)
                        .map(|_| piece)
                })
                .await
                .map_err(|e| failed(location, e.to_string()))?
                .map_err(|e| failed(location, e.to_string()))?;
                Ok((!read.is_empty()).then(|| Bytes::from(read)))
            }
        }
    }

    /// The rest of the object, whole.
    ///
    /// # Errors
    /// [`StorageError::Object`] naming the object.
    pub async fn read_rest(&mut self) -> Result<Vec<u8>, StorageError> {
        let mut all = Vec::new();
        while let Some(piece) = self.next(READ_PIECE_BYTES).await? {
            all.extend_from_slice(&piece);
        }
        Ok(all)
    }
}

/// The size of the pieces [`ObjectReader::read_rest`] reads.
const READ_PIECE_BYTES: usize = 8 * 1024 * 1024;
