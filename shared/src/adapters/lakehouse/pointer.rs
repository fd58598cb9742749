//! The compare-and-swap of a table's metadata pointer — the one step of a commit that decides
//! whether it landed. SQL catalogs: one conditional `UPDATE` of `iceberg_tables`, its row count
//! is the truth. AWS Glue: `GetTable` (its `VersionId` and `metadata_location`), then
//! `UpdateTable` with that `VersionId`; Glue refuses it with `ConcurrentModificationException`
//! when another writer updated the table in between. Also a Glue table's creation: its first
//! metadata file and the Glue entry pointing at it.

use std::collections::HashMap;

use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};
use iceberg::io::FileIO;
use iceberg::spec::{PrimitiveType, TableMetadataBuilder, Type};
use iceberg::{MetadataLocation, TableCreation, TableIdent};
use sqlx::AnyPool;

use crate::error::StorageError;

/// The Glue table parameter naming the current metadata file (the Iceberg convention).
const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// Where a table's metadata pointer lives.
pub(super) enum CatalogPointer {
    Sql {
        pool: AnyPool,
        dialect: Dialect,
        catalog_name: &'static str,
    },
    Glue(aws_sdk_glue::Client),
}

impl CatalogPointer {
    /// Points the table at `new` if it still points at `expected`; `Ok(false)` if it does not
    /// (a lost race: re-plan). An error means the outcome is unknown: delete nothing.
    pub(super) async fn swap(
        &self,
        ident: &TableIdent,
        expected: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        match self {
            CatalogPointer::Sql {
                pool,
                dialect,
                catalog_name,
            } => swap_sql(pool, *dialect, catalog_name, ident, expected, new).await,
            // Boxed: the AWS SDK's request futures nest too deeply for callers' layouts.
            CatalogPointer::Glue(client) => Box::pin(swap_glue(client, ident, expected, new)).await,
        }
    }
}

impl CatalogPointer {
    /// The metadata file the table points at now (`None`: no such table).
    pub(super) async fn location(
        &self,
        ident: &TableIdent,
    ) -> Result<Option<String>, StorageError> {
        match self {
            CatalogPointer::Sql {
                pool,
                dialect,
                catalog_name,
            } => {
                let sql = match dialect {
                    Dialect::Sqlite => {
                        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? \
                         AND table_namespace = ? AND table_name = ? \
                         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
                    }
                    Dialect::Postgres => {
                        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 \
                         AND table_namespace = $2 AND table_name = $3 \
                         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
                    }
                };
                let row: Option<(Option<String>,)> = sqlx::query_as(sql)
                    .bind(*catalog_name)
                    .bind(ident.namespace().join("."))
                    .bind(ident.name())
                    .fetch_optional(pool)
                    .await
                    .map_err(StorageError::Catalog)?;
                Ok(row.and_then(|(location,)| location))
            }
            CatalogPointer::Glue(client) => Box::pin(glue_location(client, ident)).await,
        }
    }
}

/// A Glue table's `metadata_location` (`None`: no such table).
async fn glue_location(
    client: &aws_sdk_glue::Client,
    ident: &TableIdent,
) -> Result<Option<String>, StorageError> {
    let database = ident.namespace().join(".");
    let name = ident.name();
    let found = client
        .get_table()
        .database_name(&database)
        .name(name)
        .send()
        .await;
    match found {
        Ok(found) => Ok(found
            .table()
            .and_then(|t| t.parameters())
            .and_then(|p| p.get(METADATA_LOCATION))
            .cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(glue_error(format!("GetTable {database}.{name}"), e)),
    }
}

async fn swap_sql(
    pool: &AnyPool,
    dialect: Dialect,
    catalog_name: &str,
    ident: &TableIdent,
    expected: &str,
    new: &str,
) -> Result<bool, StorageError> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?"
        }
        Dialect::Postgres => {
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 AND metadata_location = $6"
        }
    };
    let namespace = ident.namespace().join(".");
    let result = sqlx::query(sql)
        .bind(new)
        .bind(expected)
        .bind(catalog_name)
        .bind(namespace)
        .bind(ident.name())
        .bind(expected)
        .execute(pool)
        .await;
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        // SQLite busy or locked: the statement never ran, so this is a lost race, not an
        // unknown outcome.
        Err(sqlx::Error::Database(e))
            if dialect == Dialect::Sqlite && is_sqlite_busy(e.code().as_deref()) =>
        {
            Ok(false)
        }
        Err(e) => Err(StorageError::Catalog(e)),
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), including their extended codes.
fn is_sqlite_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

async fn swap_glue(
    client: &aws_sdk_glue::Client,
    ident: &TableIdent,
    expected: &str,
    new: &str,
) -> Result<bool, StorageError> {
    let database = ident.namespace().join(".");
    let name = ident.name();
    let found = client
        .get_table()
        .database_name(&database)
        .name(name)
        .send()
        .await
        .map_err(|e| glue_error(format!("GetTable {database}.{name}"), e))?;
    let Some(table) = found.table() else {
        return Err(StorageError::Glue {
            context: format!("GetTable {database}.{name}"),
            message: "no table in the answer".to_string(),
            retryable: false,
        });
    };
    let current = table.parameters().and_then(|p| p.get(METADATA_LOCATION));
    if current.map(String::as_str) != Some(expected) {
        return Ok(false);
    }
    let mut parameters: HashMap<String, String> = table.parameters().cloned().unwrap_or_default();
    parameters.insert(METADATA_LOCATION.to_string(), new.to_string());
    parameters.insert(PREVIOUS_METADATA_LOCATION.to_string(), expected.to_string());
    let input = TableInput::builder()
        .name(table.name())
        .set_description(table.description().map(str::to_string))
        .set_owner(table.owner().map(str::to_string))
        .set_table_type(table.table_type().map(str::to_string))
        .set_storage_descriptor(table.storage_descriptor().cloned())
        .set_parameters(Some(parameters))
        .build()
        .map_err(|e| StorageError::Glue {
            context: format!("UpdateTable {database}.{name}"),
            message: e.to_string(),
            retryable: false,
        })?;
    let update = client
        .update_table()
        .database_name(&database)
        .table_input(input)
        .set_version_id(table.version_id().map(str::to_string))
        // Glue would otherwise archive a table version per commit (a quota of its own).
        .skip_archive(true)
        .send()
        .await;
    match update {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_concurrent_modification_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(glue_error(format!("UpdateTable {database}.{name}"), e)),
    }
}

/// Creates a table in Glue: writes its first metadata file and the Glue table pointing at it,
/// with the columns Glue shows (Athena reads the Iceberg metadata itself). Ours, not the Glue
/// crate's: that one refuses `timestamptz` columns (every table here has some), where Glue's
/// Hive types have only `timestamp` — which PyIceberg writes for both, as here.
///
/// # Errors
/// The metadata cannot be written, or Glue refuses the table (one that exists included).
pub(super) async fn create_glue_table(
    client: &aws_sdk_glue::Client,
    file_io: &FileIO,
    ident: &TableIdent,
    creation: TableCreation,
) -> Result<(), StorageError> {
    let context = format!(
        "create table {}.{}",
        ident.namespace().join("."),
        ident.name()
    );
    let metadata = TableMetadataBuilder::from_table_creation(creation)
        .and_then(|b| b.build())
        .map_err(StorageError::iceberg(&context))?
        .metadata;
    let metadata_location = MetadataLocation::new_with_metadata(metadata.location(), &metadata);
    metadata
        .write_to(file_io, &metadata_location)
        .await
        .map_err(StorageError::iceberg(&context))?;
    let glue_failed = |message: String| StorageError::Glue {
        context: context.clone(),
        message,
        retryable: false,
    };
    let columns = metadata
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|field| {
            Column::builder()
                .name(field.name.clone())
                .r#type(glue_type(&field.field_type))
                .set_comment(field.doc.clone())
                .build()
                .map_err(|e| glue_failed(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let input = TableInput::builder()
        .name(ident.name())
        .table_type("EXTERNAL_TABLE")
        .parameters("table_type", "ICEBERG")
        .parameters(METADATA_LOCATION, metadata_location.to_string())
        .storage_descriptor(
            StorageDescriptor::builder()
                .set_columns(Some(columns))
                .location(metadata.location())
                .build(),
        )
        .build()
        .map_err(|e| glue_failed(e.to_string()))?;
    client
        .create_table()
        .database_name(ident.namespace().join("."))
        .table_input(input)
        .send()
        .await
        .map_err(|e| glue_error(context.clone(), e))?;
    Ok(())
}

/// The Glue (Hive) column type of an Iceberg type.
fn glue_type(field_type: &Type) -> String {
    match field_type {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean".to_string(),
            PrimitiveType::Int => "int".to_string(),
            PrimitiveType::Long => "bigint".to_string(),
            PrimitiveType::Float => "float".to_string(),
            PrimitiveType::Double => "double".to_string(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".to_string(),
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp".to_string(),
            PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => {
                "string".to_string()
            }
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => "binary".to_string(),
        },
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name, glue_type(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(","))
        }
        Type::List(l) => format!("array<{}>", glue_type(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{},{}>",
            glue_type(&m.key_field.field_type),
            glue_type(&m.value_field.field_type)
        ),
    }
}

/// A Glue failure, classed: throttling, Glue's internal errors and the transport are retryable.
fn glue_error<E, R>(context: String, error: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &error {
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ThrottlingException"
                    | "InternalServiceException"
                    | "OperationTimeoutException"
                    | "ConcurrentModificationException"
                    | "ResourceNotReadyException"
            )
        ),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let message = match error.code() {
        Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
        None => aws_sdk_glue::error::DisplayErrorContext(&error).to_string(),
    };
    StorageError::Glue {
        context,
        message,
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_glue::operation::get_table::{GetTableError, GetTableOutput};
    use aws_sdk_glue::operation::update_table::{UpdateTableError, UpdateTableOutput};
    use aws_sdk_glue::types::Table as GlueTable;
    use aws_sdk_glue::types::error::{
        ConcurrentModificationException, EntityNotFoundException, InternalServiceException,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use iceberg::NamespaceIdent;

    #[test]
    fn sqlite_busy_and_locked_codes_are_lost_races() {
        for code in ["5", "6", "261", "517", "773", "262"] {
            assert!(is_sqlite_busy(Some(code)), "{code}");
        }
        for code in [
            None,
            Some("1"),
            Some("19"),
            Some("2067"),
            Some("40001"),
            Some("x"),
        ] {
            assert!(!is_sqlite_busy(code), "{code:?}");
        }
    }

    fn ident() -> TableIdent {
        TableIdent::new(NamespaceIdent::new("bronze".into()), "sales_events".into())
    }

    /// Glue's answer to GetTable: the table at `location`, in version `version`.
    fn glue_table(location: &'static str, version: &'static str) -> GetTableOutput {
        let table = GlueTable::builder()
            .name("sales_events")
            .table_type("EXTERNAL_TABLE")
            .version_id(version)
            .parameters("table_type", "ICEBERG")
            .parameters(METADATA_LOCATION, location)
            .build();
        match table {
            Ok(table) => GetTableOutput::builder().table(table).build(),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn glue_location_is_the_tables_metadata_location_or_none() {
        let found = mock!(aws_sdk_glue::Client::get_table)
            .then_output(|| glue_table("s3://lake/m/00003.metadata.json", "9"));
        let missing = mock!(aws_sdk_glue::Client::get_table).then_error(|| {
            GetTableError::EntityNotFoundException(
                EntityNotFoundException::builder()
                    .message("no such table")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&found, &missing]);
        let pointer = CatalogPointer::Glue(client);
        let location = pointer.location(&ident()).await.unwrap();
        assert_eq!(location.as_deref(), Some("s3://lake/m/00003.metadata.json"));
        assert_eq!(pointer.location(&ident()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn glue_swap_updates_with_the_version_it_read() {
        let get = mock!(aws_sdk_glue::Client::get_table)
            .match_requests(|r| {
                r.database_name() == Some("bronze") && r.name() == Some("sales_events")
            })
            .then_output(|| glue_table("s3://lake/m/00001.metadata.json", "7"));
        let update = mock!(aws_sdk_glue::Client::update_table)
            .match_requests(|r| {
                let params = r.table_input().and_then(|t| t.parameters());
                r.version_id() == Some("7")
                    && r.skip_archive() == Some(true)
                    && r.table_input().map(|t| t.name()) == Some("sales_events")
                    && params
                        .and_then(|p| p.get(METADATA_LOCATION))
                        .map(String::as_str)
                        == Some("s3://lake/m/00002.metadata.json")
                    && params
                        .and_then(|p| p.get(PREVIOUS_METADATA_LOCATION))
                        .map(String::as_str)
                        == Some("s3://lake/m/00001.metadata.json")
                    && params.and_then(|p| p.get("table_type")).map(String::as_str)
                        == Some("ICEBERG")
            })
            .then_output(|| UpdateTableOutput::builder().build());
        let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &update]);
        let pointer = CatalogPointer::Glue(client);
        let swapped = pointer
            .swap(
                &ident(),
                "s3://lake/m/00001.metadata.json",
                "s3://lake/m/00002.metadata.json",
            )
            .await;
        assert!(matches!(swapped, Ok(true)), "{swapped:?}");
        assert_eq!((get.num_calls(), update.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn glue_swap_loses_when_the_pointer_moved_on() {
        let get = mock!(aws_sdk_glue::Client::get_table)
            .then_output(|| glue_table("s3://lake/m/00002.metadata.json", "8"));
        let update = mock!(aws_sdk_glue::Client::update_table)
            .then_output(|| UpdateTableOutput::builder().build());
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, [&get, &update]);
        let swapped = CatalogPointer::Glue(client)
            .swap(&ident(), "s3://lake/m/00001.metadata.json", "s3://lake/m/x")
            .await;
        assert!(matches!(swapped, Ok(false)), "{swapped:?}");
        assert_eq!(update.num_calls(), 0, "a stale plan must not be written");
    }

    #[tokio::test]
    async fn glue_swap_loses_on_a_concurrent_update() {
        let get = mock!(aws_sdk_glue::Client::get_table)
            .then_output(|| glue_table("s3://lake/m/00001.metadata.json", "7"));
        let update = mock!(aws_sdk_glue::Client::update_table).then_error(|| {
            UpdateTableError::ConcurrentModificationException(
                ConcurrentModificationException::builder()
                    .message("version 7 is not the latest")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &update]);
        let swapped = CatalogPointer::Glue(client)
            .swap(&ident(), "s3://lake/m/00001.metadata.json", "s3://lake/m/x")
            .await;
        assert!(matches!(swapped, Ok(false)), "{swapped:?}");
    }

    #[tokio::test]
    async fn glue_failures_are_errors_with_their_class() {
        let get = mock!(aws_sdk_glue::Client::get_table)
            .then_output(|| glue_table("s3://lake/m/00001.metadata.json", "7"));
        let missing = mock!(aws_sdk_glue::Client::update_table).then_error(|| {
            UpdateTableError::EntityNotFoundException(
                EntityNotFoundException::builder()
                    .message("no such table")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &missing]);
        let swapped = CatalogPointer::Glue(client)
            .swap(&ident(), "s3://lake/m/00001.metadata.json", "s3://lake/m/x")
            .await;
        match swapped {
            Err(e @ StorageError::Glue { .. }) => {
                assert!(!e.is_retryable(), "{e}");
                assert!(e.to_string().contains("EntityNotFoundException"), "{e}");
            }
            other => panic!("expected a Glue error, got {other:?}"),
        }

        let busy = mock!(aws_sdk_glue::Client::get_table).then_error(|| {
            GetTableError::InternalServiceException(
                InternalServiceException::builder()
                    .message("try again")
                    // What the SDK reads from the wire's `__type`.
                    .meta(
                        aws_sdk_glue::error::ErrorMetadata::builder()
                            .code("InternalServiceException")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, [&busy]);
        let swapped = CatalogPointer::Glue(client)
            .swap(&ident(), "s3://lake/m/00001.metadata.json", "s3://lake/m/x")
            .await;
        match swapped {
            Err(e) => assert!(e.is_retryable(), "{e}"),
            Ok(v) => panic!("expected Glue's internal error, got {v}"),
        }
    }
}
