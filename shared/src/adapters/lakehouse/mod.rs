//! All Iceberg access: opening the catalog (SQL or AWS Glue), creating the tables, reading and
//! writing data files, what a table's metadata says (`facts.rs`), committing through our own
//! compare-and-swap commit (`commit.rs`), and table maintenance (`maintain.rs`). The crate is
//! 0.x. The hops and the CLI import nothing from it: they hold its `Table` and `DataFile` as
//! handles and ask this adapter what they say, so most API changes stop here.

mod cache;
mod commit;
mod facts;
mod files;
mod lookup;
mod maintain;
mod pointer;
pub mod tables;

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::io::StorageFactory;
use iceberg::io::{FileIO, FileIOBuilder};

/// A data file of a table, as its manifests describe it.
pub use iceberg::spec::DataFile;
use iceberg::spec::{Schema, TableMetadata};
/// A table as loaded (its metadata at one snapshot), handed to the adapter's functions.
pub use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, Runtime, TableCreation};
use iceberg_catalog_glue::{GlueCatalog, GlueCatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tracing::instrument;

pub use commit::{CHECKPOINT_PREFIX, CommitOutcome, CommitPlan, Operation};
pub use facts::{Head, SnapshotFacts};
pub use files::{
    BLOOM_FILTER_ENABLED, BLOOM_FILTER_FPP, Columns, DEFAULT_BLOOM_FILTER_FPP,
    DEFAULT_TARGET_FILE_SIZE, LiveFile, TableWriter, arrow_schema, batch_to_rows, batches_by_day,
    partition_value, rows_to_batch, write_produced,
};
pub use lookup::{KeyProbe, LookupStats};
pub use maintain::{FileStats, OrphanStats};
pub use tables::{ALL_TABLES, Col, Grain, TableDef};

use crate::config::{CATALOG_NAME, CatalogUri, Config, S3_ENDPOINT};
use crate::error::StorageError;
use pointer::{CatalogPointer, Dialect};

/// The fields of `table`'s schema once evolved to `def`, or `None` when it matches already.
fn planned_schema(
    def: &TableDef,
    table: &Table,
) -> Result<Option<Vec<iceberg::spec::NestedFieldRef>>, StorageError> {
    let wanted = def
        .schema()
        .map_err(StorageError::iceberg(def.qualified()))?;
    let metadata = table.metadata();
    tables::schema_change(
        metadata.current_schema(),
        &wanted,
        metadata.last_column_id(),
    )
    .map_err(|message| StorageError::Evolution {
        table: def.qualified(),
        message,
    })
}

/// Table properties every table is created with.
const TABLE_PROPERTIES: [(&str, &str); 3] = [
    ("write.format.default", "parquet"),
    ("write.parquet.compression-codec", "snappy"),
    // Our own commit loop retries; the crate's is never used.
    ("commit.retry.num-retries", "0"),
];

/// The catalog, the object storage and the commit protocol, opened once per process.
pub struct Lakehouse {
    catalog: Arc<dyn Catalog>,
    pointer: CatalogPointer,
    file_io: FileIO,
    /// Storage properties (S3 endpoint and credentials), for listing objects.
    storage: HashMap<String, String>,
    warehouse: String,
    commit_attempts: u32,
    cache: cache::MetadataCache,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse")
            .field("warehouse", &self.warehouse)
            .finish_non_exhaustive()
    }
}

impl Lakehouse {
    /// Connects to the catalog (SQL database or AWS Glue) and the warehouse storage.
    ///
    /// # Errors
    /// The database or storage cannot be reached.
    #[instrument(skip_all, fields(warehouse = %config.warehouse))]
    pub async fn open(config: &Config) -> Result<Self, StorageError> {
        if let Some(path) = config.warehouse.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|e| StorageError::Object {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        }
        let factory = Arc::new(OpenDalResolvingStorageFactory::new());
        let mut props: HashMap<String, String> = config.storage.clone();
        props.insert("warehouse".to_string(), config.warehouse.clone());
        let (catalog, pointer): (Arc<dyn Catalog>, _) = match &config.catalog {
            CatalogUri::Glue => {
                // Boxed: the AWS SDK's loading futures nest too deeply for every caller's layout.
                let (catalog, client) = Box::pin(open_glue(config, factory.clone(), props)).await?;
                (Arc::new(catalog), CatalogPointer::Glue(client))
            }
            sql => {
                let (catalog, pointer) = open_sql(sql, factory.clone(), props).await?;
                (Arc::new(catalog), pointer)
            }
        };
        let file_io = FileIOBuilder::new(factory)
            .with_props(config.storage.clone())
            .build();
        Ok(Lakehouse {
            catalog,
            pointer,
            file_io,
            storage: config.storage.clone(),
            warehouse: config.warehouse.clone(),
            commit_attempts: config.commit_attempts,
            cache: cache::MetadataCache::default(),
        })
    }

    /// Fails within a few seconds, naming the endpoint, when an `s3://` warehouse's server does
    /// not answer (a file warehouse always does): a wrong endpoint or a stopped server is then one
    /// clear line instead of a request's retries and their error chain.
    ///
    /// # Errors
    /// [`StorageError::Unreachable`].
    pub async fn check_warehouse(&self) -> Result<(), StorageError> {
        if !self.warehouse.starts_with("s3://") {
            return Ok(());
        }
        let unreachable = |message: String| StorageError::Unreachable {
            what: format!(
                "the S3 endpoint {} (warehouse {})",
                self.storage
                    .get(crate::config::S3_ENDPOINT)
                    .map_or("of AWS_REGION", String::as_str),
                self.warehouse
            ),
            seconds: CONNECT_WITHIN.as_secs(),
            message,
        };
        let probe = self.file_io.exists(format!("{}/", self.warehouse));
        match tokio::time::timeout(CONNECT_WITHIN, probe).await {
            // A refusal (credentials, permissions) is an answer: the command reports it itself.
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let cause = root_cause(&e);
                let lower = cause.to_lowercase();
                let unanswered = ["connect", "dns", "timed out", "resolve"]
                    .iter()
                    .any(|word| lower.contains(word));
                if unanswered {
                    Err(unreachable(cause))
                } else {
                    Ok(())
                }
            }
            Err(_) => Err(unreachable("no answer".to_string())),
        }
    }

    /// The catalog, for query engines.
    pub fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// Storage access for objects outside tables (landing files).
    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    /// Deletes data files written but never committed (see [`delete_uncommitted`]).
    pub async fn delete_uncommitted(&self, files: &[DataFile]) {
        delete_uncommitted(&self.file_io, files.iter().map(DataFile::file_path)).await;
    }

    /// Storage properties (S3 endpoint, region, credentials).
    pub fn storage(&self) -> &HashMap<String, String> {
        &self.storage
    }

    /// The warehouse location.
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// Creates the namespaces and every table that does not exist yet, and brings the others
    /// to their current definitions ([`Lakehouse::evolve`]), after checking every one: a change
    /// Iceberg forbids on any table stops it before anything is written. Returns the tables
    /// created.
    ///
    /// # Errors
    /// [`StorageError::Evolution`], or the catalog refuses a creation for another reason than
    /// "already exists".
    pub async fn create_tables(&self) -> Result<Vec<String>, StorageError> {
        for namespace in tables::NAMESPACES {
            let ident = NamespaceIdent::new(namespace.to_string());
            let exists = self
                .catalog
                .namespace_exists(&ident)
                .await
                .map_err(StorageError::iceberg("check namespace"))?;
            if !exists
                && let Err(e) = self.catalog.create_namespace(&ident, HashMap::new()).await
                // A concurrent init may have created it meanwhile.
                && !self.catalog.namespace_exists(&ident).await.unwrap_or(false)
            {
                return Err(StorageError::iceberg(format!(
                    "create namespace {namespace}"
                ))(e));
            }
        }
        // Every existing table's change is checked first: a refused one leaves all as it was.
        let mut existing = Vec::new();
        for def in ALL_TABLES {
            if self.table_exists(&def).await? {
                let table = self.load(&def).await?;
                planned_schema(&def, &table)?;
                existing.push(def);
            }
        }
        let mut created = Vec::new();
        for def in ALL_TABLES {
            if existing.contains(&def) {
                self.evolve(&def).await?;
            } else if self.create_table(&def).await? {
                created.push(def.qualified());
            }
        }
        Ok(created)
    }

    async fn table_exists(&self, def: &TableDef) -> Result<bool, StorageError> {
        self.catalog
            .table_exists(&def.ident())
            .await
            .map_err(StorageError::iceberg("check table"))
    }

    /// Creates a table from its definition; `false` when another process created it first.
    ///
    /// # Errors
    /// The catalog refuses the creation for another reason.
    pub async fn create_table(&self, def: &TableDef) -> Result<bool, StorageError> {
        let ident = def.ident();
        // The same layout on every catalog: IAM policies and S3 triggers rely on it.
        let creation = TableCreation::builder()
            .name(def.name.to_string())
            .location(format!("{}/{}/{}", self.warehouse, def.namespace, def.name))
            .schema(
                def.schema()
                    .map_err(StorageError::iceberg(def.qualified()))?,
            )
            .partition_spec(
                def.partition_spec()
                    .map_err(StorageError::iceberg(def.qualified()))?,
            )
            .properties(table_properties(def))
            .build();
        let outcome = match &self.pointer {
            CatalogPointer::Glue(client) => {
                pointer::create_glue_table(client, &self.file_io, &ident, creation).await
            }
            CatalogPointer::Sql { .. } => self
                .catalog
                .create_table(ident.namespace(), creation)
                .await
                .map(|_| ())
                .map_err(StorageError::iceberg(format!(
                    "create table {}",
                    def.qualified()
                ))),
        };
        match outcome {
            Ok(()) => Ok(true),
            // A concurrent init may have created it meanwhile.
            Err(e) if !self.catalog.table_exists(&ident).await.unwrap_or(false) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Brings a table created from an older definition up to `def`, without rewriting data
    /// ([`tables::schema_change`]): new columns become optional fields with new ids (files
    /// written before read them as null), widened types are promoted in place, and properties
    /// it lacks (the lookup columns' bloom filters) are set, so the files written from now on
    /// carry them. A change Iceberg forbids is refused before anything is written; the change
    /// lands through the compare-and-swap, so a writer planning on the older schema re-plans.
    ///
    /// # Errors
    /// [`StorageError::Evolution`], or the catalog or storage fails.
    pub async fn evolve(&self, def: &TableDef) -> Result<(), StorageError> {
        let wanted_properties = table_properties(def);
        self.update_metadata_with(def, |table| {
            let metadata = table.metadata();
            let missing: HashMap<String, String> = wanted_properties
                .iter()
                .filter(|(k, _)| !metadata.properties().contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let fields = planned_schema(def, table)?;
            if missing.is_empty() && fields.is_none() {
                return Ok(None);
            }
            let context = || format!("evolve {}", def.qualified());
            let location = table.metadata_location().map(str::to_string);
            let mut builder = metadata.clone().into_builder(location);
            if let Some(fields) = fields {
                let schema = Schema::builder()
                    .with_fields(fields)
                    .build()
                    .map_err(StorageError::iceberg(context()))?;
                builder = builder
                    .add_current_schema(schema)
                    .map_err(StorageError::iceberg(context()))?;
            }
            let updated = builder
                .set_properties(missing)
                .and_then(|b| b.build())
                .map_err(StorageError::iceberg(context()))?;
            Ok(Some((updated.metadata, ())))
        })
        .await?;
        Ok(())
    }

    /// Makes `grain` the table's partitioning for the files written from now on; files written
    /// before keep their spec and stay readable, and compaction rewrites them into the new one
    /// when it touches them. Returns whether anything changed. The change lands through the
    /// compare-and-swap: a writer that planned under the old spec re-plans.
    ///
    /// # Errors
    /// [`StorageError::Evolution`] for a granularity the table does not accept, or the catalog
    /// or storage fails.
    pub async fn evolve_partition(
        &self,
        def: &TableDef,
        grain: Grain,
    ) -> Result<bool, StorageError> {
        let changed = self
            .update_metadata_with(def, |table| {
                let metadata = table.metadata();
                let spec = tables::partition_change(def, metadata.default_partition_spec(), grain)
                    .map_err(|message| StorageError::Evolution {
                        table: def.qualified(),
                        message,
                    })?;
                let Some(spec) = spec else {
                    return Ok(None);
                };
                let context = || format!("evolve the partition spec of {}", def.qualified());
                let location = table.metadata_location().map(str::to_string);
                let updated = metadata
                    .clone()
                    .into_builder(location)
                    .add_default_partition_spec(spec)
                    .and_then(|b| b.build())
                    .map_err(StorageError::iceberg(context()))?;
                Ok(Some((updated.metadata, ())))
            })
            .await?;
        Ok(changed.is_some())
    }

    /// Loads a table's current metadata.
    ///
    /// # Errors
    /// The table does not exist (run `bakehouse init`) or cannot be read.
    pub async fn load(&self, def: &TableDef) -> Result<Table, StorageError> {
        let (ident, name) = (def.ident(), def.qualified());
        let failed =
            StorageError::iceberg(format!("load table {name} (has `bakehouse init` run?)"));
        // The pointer, then its metadata file unless that version is the one kept (loaded or
        // committed by this process).
        let Some(location) = self.pointer.location(&ident).await? else {
            let missing = format!("no table {name} in the catalog");
            return Err(failed(iceberg::Error::new(
                ErrorKind::TableNotFound,
                missing,
            )));
        };
        if let Some(table) = self.cache.table_at(&ident, &location) {
            return Ok(table);
        }
        let read = TableMetadata::read_from(&self.file_io, &location).await;
        let table = read
            .and_then(|metadata| table_version(&self.file_io, ident, location, metadata))
            .map_err(failed)?;
        self.cache.keep_table(&table);
        Ok(table)
    }
}

/// The properties a table is created with: [`TABLE_PROPERTIES`], and a bloom filter for
/// each of its lookup columns.
fn table_properties(def: &TableDef) -> HashMap<String, String> {
    let common = TABLE_PROPERTIES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let blooms = def.lookup_columns().into_iter().flat_map(|column| {
        [
            (
                format!("{BLOOM_FILTER_ENABLED}{column}"),
                "true".to_string(),
            ),
            (
                format!("{BLOOM_FILTER_FPP}{column}"),
                DEFAULT_BLOOM_FILTER_FPP.to_string(),
            ),
        ]
    });
    common.chain(blooms).collect()
}

/// Times a catalog's tables are created again after losing a race to create them.
const CATALOG_CREATION_TRIES: u64 = 5;

/// Whether opening a SQL catalog failed because another process created its tables at the
/// same time.
fn lost_creation_race(e: &iceberg::Error) -> bool {
    let message = e.to_string();
    message.contains("already exists") || message.contains("pg_type_typname_nsp_index")
}

/// The table `ident` at the version whose metadata, at `location`, is `metadata`.
fn table_version(
    file_io: &FileIO,
    ident: iceberg::TableIdent,
    location: String,
    metadata: TableMetadata,
) -> iceberg::Result<Table> {
    Table::builder()
        .file_io(file_io.clone())
        .identifier(ident)
        .metadata_location(location)
        .metadata(metadata)
        .runtime(Runtime::try_current()?)
        .build()
}

/// Deletes files written but never committed, as far as it can: the orphan sweep removes any
/// left.
async fn delete_uncommitted(file_io: &FileIO, paths: impl Iterator<Item = &str>) {
    for path in paths {
        if let Err(e) = file_io.delete(path).await {
            tracing::debug!(path, error = %e, "Could not delete an uncommitted file.");
        }
    }
}

/// The innermost cause of an error (the one line that says what failed).
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// How long opening the catalog or reaching the warehouse may take before the server counts as
/// unreachable.
const CONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens an SQL catalog (SQLite in WAL mode, or PostgreSQL) and its pointer table.
async fn open_sql(
    catalog: &CatalogUri,
    factory: Arc<dyn StorageFactory>,
    mut props: HashMap<String, String>,
) -> Result<(SqlCatalog, CatalogPointer), StorageError> {
    sqlx::any::install_default_drivers();
    let dialect = match catalog {
        CatalogUri::Sqlite(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StorageError::Object {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            Dialect::Sqlite
        }
        _ => Dialect::Postgres,
    };
    let url = catalog.connect_url();
    let connecting = AnyPoolOptions::new().max_connections(4).connect(&url);
    let what = || format!("the catalog database {}", crate::config::redact_url(&url));
    let unreachable = |message: String| StorageError::Unreachable {
        what: what(),
        seconds: CONNECT_WITHIN.as_secs(),
        message,
    };
    let pool: AnyPool = match tokio::time::timeout(CONNECT_WITHIN, connecting).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(sqlx::Error::PoolTimedOut)) => return Err(unreachable("no connection".into())),
        // rustls reports a certificate it cannot verify as invalid data on the socket.
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
            let hint = if url.contains("sslrootcert=") {
                "the server's certificate is not signed by the CA sslrootcert names, or is not \
                 for this host"
            } else {
                "without sslrootcert the server's certificate is checked against the public \
                 roots (a private CA needs sslrootcert=/path/to/ca.pem in the URL)"
            };
            return Err(StorageError::Tls {
                what: what(),
                message: format!("{e}; {hint}"),
            });
        }
        Ok(Err(e @ sqlx::Error::Io(_))) => return Err(unreachable(e.to_string())),
        Ok(Err(sqlx::Error::Tls(e))) => {
            return Err(StorageError::Tls {
                what: what(),
                message: e.to_string(),
            });
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(unreachable("no connection".into())),
    };
    if dialect == Dialect::Sqlite {
        // WAL makes commits visible atomically to concurrent readers.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await?;
    }
    props.insert("uri".to_string(), url);
    props.insert("pool.max-connections".to_string(), "4".to_string());
    // Processes opening a new PostgreSQL catalog at once race to create its tables, and
    // `CREATE TABLE IF NOT EXISTS` fails for the losers ("type … already exists", a unique
    // violation in pg_type): the tables are there when they try again.
    let mut tries = 0;
    let catalog = loop {
        let opened = SqlCatalogBuilder::default()
            .sql_bind_style(match dialect {
                Dialect::Sqlite => SqlBindStyle::QMark,
                Dialect::Postgres => SqlBindStyle::DollarNumeric,
            })
            .with_storage_factory(factory.clone())
            .load(CATALOG_NAME, props.clone())
            .await;
        match opened {
            Err(e) if tries < CATALOG_CREATION_TRIES && lost_creation_race(&e) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
            }
            opened => break opened.map_err(StorageError::iceberg("open the catalog"))?,
        }
    };
    let pointer = CatalogPointer::Sql {
        pool,
        dialect,
        catalog_name: CATALOG_NAME,
    };
    Ok((catalog, pointer))
}

/// Opens the AWS Glue Data Catalog of the account and region of the standard AWS settings
/// (`AWS_ENDPOINT_URL` for an emulator), and a Glue client of our own for the pointer swap.
async fn open_glue(
    config: &Config,
    factory: Arc<dyn StorageFactory>,
    mut props: HashMap<String, String>,
) -> Result<(GlueCatalog, aws_sdk_glue::Client), StorageError> {
    let endpoint = config.storage.get(S3_ENDPOINT).cloned();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &endpoint {
        loader = loader.endpoint_url(endpoint);
        props.insert("uri".to_string(), endpoint.clone());
    }
    let client = aws_sdk_glue::Client::new(&loader.load().await);
    let catalog = GlueCatalogBuilder::default()
        .with_storage_factory(factory)
        .load(CATALOG_NAME, props)
        .await
        .map_err(StorageError::iceberg(format!(
            "open the Glue catalog for {}",
            config.warehouse
        )))?;
    Ok((catalog, client))
}
