//! Typed configuration from flags or the environment (SPEC §7). `Config::from_lookup` is the
//! one place that reads settings; defaults give the embedded mode under `./.bakehouse/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::domain::gold::{DEFAULT_MIN_QUALITY_SCORE, GoldPolicy};
use crate::domain::silver::SilverPolicy;
use crate::domain::time::{MICROS_PER_DAY, MICROS_PER_HOUR};
use crate::error::ConfigError;

pub const ENV_WAREHOUSE: &str = "BAKEHOUSE_WAREHOUSE";
pub const ENV_CATALOG: &str = "BAKEHOUSE_CATALOG";
pub const ENV_MIN_QUALITY_SCORE: &str = "BAKEHOUSE_MIN_QUALITY_SCORE";
pub const ENV_ALLOWED_LATENESS_HOURS: &str = "BAKEHOUSE_ALLOWED_LATENESS_HOURS";
pub const ENV_COMMIT_ATTEMPTS: &str = "BAKEHOUSE_COMMIT_ATTEMPTS";
pub const ENV_TARGET_FILE_MB: &str = "BAKEHOUSE_TARGET_FILE_MB";
pub const ENV_SNAPSHOT_RETENTION_DAYS: &str = "BAKEHOUSE_SNAPSHOT_RETENTION_DAYS";
pub const ENV_SNAPSHOTS_KEPT: &str = "BAKEHOUSE_SNAPSHOTS_KEPT";
pub const ENV_ORPHAN_AGE_HOURS: &str = "BAKEHOUSE_ORPHAN_AGE_HOURS";
pub const ENV_S3_PATH_STYLE: &str = "BAKEHOUSE_S3_PATH_STYLE";
pub const ENV_OBJECT_ROOT: &str = "BAKEHOUSE_OBJECT_ROOT";
pub const ENV_MAX_OBJECT_BYTES: &str = "BAKEHOUSE_MAX_OBJECT_BYTES";
pub const ENV_LANDING: &str = "BAKEHOUSE_LANDING";
pub const ENV_WEATHER_URL: &str = "BAKEHOUSE_WEATHER_URL";
pub const ENV_WEATHER_TIMEOUT_SECONDS: &str = "BAKEHOUSE_WEATHER_TIMEOUT_SECONDS";
pub const ENV_WEATHER_ATTEMPTS: &str = "BAKEHOUSE_WEATHER_ATTEMPTS";
pub const ENV_WEATHER_DAYS_BACK: &str = "BAKEHOUSE_WEATHER_DAYS_BACK";
pub const ENV_WEATHER_DAYS_AHEAD: &str = "BAKEHOUSE_WEATHER_DAYS_AHEAD";
pub const ENV_AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const ENV_AWS_REGION: &str = "AWS_REGION";
pub const ENV_AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// The storage property of a custom S3 endpoint (from `AWS_ENDPOINT_URL`).
pub const S3_ENDPOINT: &str = "s3.endpoint";

/// The folder of the embedded mode, relative to the working directory.
pub const DEFAULT_HOME: &str = ".bakehouse";
/// The SQL catalog's name (its `catalog_name` column), shared with other engines.
pub const CATALOG_NAME: &str = "bakehouse";
/// Default attempts of one commit under contention.
pub const DEFAULT_COMMIT_ATTEMPTS: u32 = 30;
/// Default size cap of an object read whole (a CSV file, or one quarantined as one record).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// Default endpoint of the weather API (Open-Meteo's daily forecast).
pub const DEFAULT_WEATHER_URL: &str = "https://api.open-meteo.com/v1/forecast";
/// Default allowed lateness in hours.
pub const DEFAULT_ALLOWED_LATENESS_HOURS: i64 = 48;

/// Where the catalog lives. Its `Debug` hides a PostgreSQL URL's password.
#[derive(Clone, PartialEq)]
pub enum CatalogUri {
    /// SQLite database file (`sqlite:///path`).
    Sqlite(PathBuf),
    /// PostgreSQL (`postgres://user:pass@host:port/db`), its `sslmode` always set
    /// ([`CatalogUri::parse`]).
    Postgres(String),
    /// The AWS Glue Data Catalog of the account and region (`glue`).
    Glue,
}

impl CatalogUri {
    #[cfg(feature = "sqlite")]
    const ACCEPTED: &'static str =
        "sqlite:///path/to/catalog.db, postgres://user:password@host:port/database or glue";
    /// The Lambda functions are built without the `sqlite` feature: their catalog is Glue or
    /// PostgreSQL (template.yaml), and SQLite would be ~1.2 MB of each bootstrap.
    #[cfg(not(feature = "sqlite"))]
    const ACCEPTED: &'static str = "postgres://user:password@host:port/database or glue \
         (this build has no SQLite catalog)";

    /// Parses `sqlite:///…`, `postgres://…` (`postgresql://` too) or `glue`. A PostgreSQL URL
    /// without `sslmode` gets TLS by default: `verify-full` (the server's certificate checked
    /// against the public roots, or `sslrootcert`, and its host name) for a server across a
    /// network; `prefer` (TLS when the server offers it) for one on this machine's loopback,
    /// where there is no network to protect.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the accepted forms, or the accepted `sslmode` values.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::Invalid {
            name: "--catalog / BAKEHOUSE_CATALOG",
            value: redact_url(value),
            accepted: Self::ACCEPTED,
        };
        if let Some(path) = value.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || !cfg!(feature = "sqlite") {
                return Err(invalid());
            }
            Ok(CatalogUri::Sqlite(absolute(Path::new(path))))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            let url = with_ssl_mode(value).ok_or_else(invalid)?;
            Ok(CatalogUri::Postgres(url?))
        } else if value == "glue" {
            Ok(CatalogUri::Glue)
        } else {
            Err(invalid())
        }
    }

    /// The URL the database driver connects to.
    pub fn connect_url(&self) -> String {
        match self {
            CatalogUri::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            CatalogUri::Postgres(url) => url.clone(),
            CatalogUri::Glue => "glue".to_string(),
        }
    }
}

impl std::fmt::Debug for CatalogUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogUri::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            CatalogUri::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
            CatalogUri::Glue => f.write_str("Glue"),
        }
    }
}

/// libpq's `sslmode` values, all of which a PostgreSQL catalog URL may name.
const SSL_MODES: &str = "disable, allow, prefer, require, verify-ca or verify-full";

/// A PostgreSQL `url` with its `sslmode` (see [`CatalogUri::parse`]); `None` when it is no URL.
/// A `sslrootcert` must name a file that exists. The database driver reads `sslmode` only from
/// the URL here (`PGSSLMODE` is not consulted).
fn with_ssl_mode(url: &str) -> Option<Result<String, ConfigError>> {
    let parsed = url::Url::parse(url).ok()?;
    // The last of the parameters the driver reads under any of `names`.
    let param = |names: &[&str]| {
        let pairs = parsed.query_pairs();
        let named = pairs.filter(|(key, _)| names.contains(&key.as_ref()));
        named.last().map(|(_, value)| value.into_owned())
    };
    if let Some(root) = param(&["sslrootcert", "ssl-root-cert", "ssl-ca"])
        && std::fs::metadata(&root).is_err()
    {
        return Some(Err(ConfigError::Invalid {
            name: "sslrootcert of --catalog / BAKEHOUSE_CATALOG",
            value: root,
            accepted: "the path of a readable PEM file: the CA that signed the server's certificate",
        }));
    }
    if let Some(mode) = param(&["sslmode", "ssl-mode"]) {
        let mut known = SSL_MODES
            .split([',', ' '])
            .filter(|m| !m.is_empty() && *m != "or");
        return Some(if known.any(|m| m.eq_ignore_ascii_case(&mode)) {
            Ok(url.to_string())
        } else {
            Err(ConfigError::Invalid {
                name: "sslmode of --catalog / BAKEHOUSE_CATALOG",
                value: mode,
                accepted: SSL_MODES,
            })
        });
    }
    // The host the driver connects to: a `host` or `hostaddr` parameter, else the URL's.
    let host = param(&["host", "hostaddr"]).or_else(|| {
        let host = parsed.host_str()?;
        Some(
            percent_encoding::percent_decode_str(host)
                .decode_utf8_lossy()
                .into_owned(),
        )
    });
    let mode = if host.as_deref().is_none_or(is_this_machine) {
        "prefer"
    } else {
        "verify-full"
    };
    // Before a `#fragment`, which the driver ignores.
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let separator = if base.contains('?') { '&' } else { '?' };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    Some(Ok(format!("{base}{separator}sslmode={mode}{fragment}")))
}

/// Whether a PostgreSQL host is on this machine: a Unix socket's folder, `localhost` or a
/// loopback address (`postgres://` is no special scheme to the URL parser: addresses stay text).
fn is_this_machine(host: &str) -> bool {
    let address = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host == "localhost"
        || address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` with its password hidden (`***`), wherever a message or log line names a catalog URL:
/// everything between `scheme://user:` and the last `@` (a password may hold `/`, `?` or
/// `#`), and the value of every `…password=` parameter (`password=`, `sslpassword=`, in a query
/// or in libpq's `key=value` form). A value without `://` that holds an `@` has everything
/// before the last `@` hidden.
pub fn redact_url(url: &str) -> String {
    let masked = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    };
    // Parameters: split at `&`, `?` and whitespace, keeping the separators.
    let separator = |c: char| matches!(c, '&' | '?') || c.is_whitespace();
    let mut out = String::with_capacity(masked.len());
    for piece in masked.split_inclusive(separator) {
        let (body, end) = match piece.char_indices().last() {
            Some((i, c)) if separator(c) => piece.split_at(i),
            _ => (piece, ""),
        };
        match body.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().ends_with("password") => {
                out.push_str(&format!("{key}=***{end}"));
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// The settings every hop and command share. Its `Debug` hides the catalog password and the
/// storage credentials.
#[derive(Clone)]
pub struct Config {
    /// `file:///abs/path` or `s3://bucket/prefix`, without a trailing slash.
    pub warehouse: String,
    pub catalog: CatalogUri,
    /// Storage properties for Iceberg's FileIO (S3 endpoint, credentials, region).
    pub storage: HashMap<String, String>,
    pub silver: SilverPolicy,
    pub gold: GoldPolicy,
    /// Attempts of one commit under contention before giving up (retryably).
    pub commit_attempts: u32,
    pub maintenance: MaintenancePolicy,
    /// Embedded stand-in for S3 buckets: when set (`file:///path`), the object
    /// `s3://bucket/key` of a notification is read from `path/bucket/key`.
    pub object_root: Option<String>,
    /// Largest object ingest reads whole (CSV, or an object quarantined as one record); a
    /// larger one is quarantined by key, unread. JSON lines are streamed, whatever their size.
    pub max_object_bytes: u64,
    /// Where input files land (`<dataset>/<name>` below it): `BAKEHOUSE_LANDING`, by default
    /// `landing` beside the warehouse (`s3://bucket/landing` for any `s3://bucket/…`).
    pub landing: String,
    pub weather: WeatherSettings,
}

/// How the weather source asks its API (SPEC §2 External API). Its `Debug` shows the URL
/// without credentials or query (a commercial plan's key travels in either).
#[derive(Clone, PartialEq)]
pub struct WeatherSettings {
    /// The daily-weather endpoint, in Open-Meteo's format.
    pub url: String,
    /// Per request.
    pub timeout: std::time::Duration,
    /// Tries per store (network error, timeout, 429 or 5xx are tried again).
    pub attempts: u32,
    /// Wait before the second try; doubled before each next one.
    pub backoff: std::time::Duration,
    /// A scheduled pull asks for these many past days (an observed day replaces its forecast)…
    pub days_back: i32,
    /// …through these many days ahead.
    pub days_ahead: i32,
}

impl WeatherSettings {
    /// The endpoint as messages name it: scheme, host, port and path only.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.url)
    }
}

/// A URL without user, password and query, for messages.
fn endpoint_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

impl std::fmt::Debug for WeatherSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeatherSettings")
            .field("url", &self.endpoint())
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .field("days_back", &self.days_back)
            .field("days_ahead", &self.days_ahead)
            .finish()
    }
}

impl Default for WeatherSettings {
    fn default() -> Self {
        WeatherSettings {
            url: DEFAULT_WEATHER_URL.to_string(),
            timeout: std::time::Duration::from_secs(10),
            attempts: 4,
            backoff: std::time::Duration::from_millis(500),
            days_back: 2,
            days_ahead: 6,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let storage: std::collections::BTreeMap<&str, &str> = self
            .storage
            .iter()
            .map(|(k, v)| {
                let secret = k.contains("secret") || k.contains("token");
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("Config")
            .field("warehouse", &self.warehouse)
            .field("catalog", &self.catalog)
            .field("storage", &storage)
            .field("silver", &self.silver)
            .field("gold", &self.gold)
            .field("commit_attempts", &self.commit_attempts)
            .field("maintenance", &self.maintenance)
            .field("object_root", &self.object_root)
            .field("max_object_bytes", &self.max_object_bytes)
            .field("landing", &self.landing)
            .field("weather", &self.weather)
            .finish()
    }
}

/// What scheduled maintenance keeps and rewrites (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaintenancePolicy {
    /// Compaction writes files near this size; smaller files (under 3/4 of it) are compacted.
    pub target_file_bytes: u64,
    /// Snapshots older than this are expired…
    pub snapshot_max_age_micros: i64,
    /// …but the newest this many are always kept.
    pub snapshots_kept: usize,
    /// Unreferenced files younger than this are never deleted (a writer may be committing them).
    pub orphan_min_age_micros: i64,
}

impl MaintenancePolicy {
    /// Files below this size are compacted.
    pub fn small_file_bytes(&self) -> u64 {
        self.target_file_bytes / 4 * 3
    }
}

/// Overrides from command-line flags, which win over the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub warehouse: Option<String>,
    pub catalog: Option<String>,
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value that is not accepted.
    pub fn from_env(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::from_lookup(overrides, |name| std::env::var(name).ok())
    }

    /// Builds the configuration from a lookup function (the environment, or a map in tests).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value that is not accepted.
    pub fn from_lookup(
        overrides: &Overrides,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let settings = Settings(lookup);
        let home = absolute(Path::new(DEFAULT_HOME));
        let warehouse = overrides
            .warehouse
            .clone()
            .or_else(|| settings.get(ENV_WAREHOUSE))
            .unwrap_or_else(|| format!("file://{}", home.join("warehouse").display()));
        let warehouse = parse_warehouse(&warehouse)?;
        let catalog = match overrides
            .catalog
            .clone()
            .or_else(|| settings.get(ENV_CATALOG))
        {
            Some(value) => CatalogUri::parse(&value)?,
            None => CatalogUri::parse(&format!("sqlite://{}", home.join("catalog.db").display()))?,
        };
        let min_quality_score = settings.number(
            ENV_MIN_QUALITY_SCORE,
            DEFAULT_MIN_QUALITY_SCORE.into(),
            0..=100,
            "an integer from 0 to 100",
        )? as i32;
        let lateness_hours = settings.number(
            ENV_ALLOWED_LATENESS_HOURS,
            DEFAULT_ALLOWED_LATENESS_HOURS,
            0..=24 * 365,
            "a whole number of hours from 0 to 8760",
        )?;
        let commit_attempts = settings.number(
            ENV_COMMIT_ATTEMPTS,
            DEFAULT_COMMIT_ATTEMPTS.into(),
            1..=10_000,
            "a whole number from 1 to 10000",
        )? as u32;
        let max_object_bytes = settings.number(
            ENV_MAX_OBJECT_BYTES,
            DEFAULT_MAX_OBJECT_BYTES as i64,
            1..=1 << 40,
            "a whole number of bytes from 1 to 1099511627776",
        )? as u64;
        let object_root = match settings.get(ENV_OBJECT_ROOT) {
            None => None,
            Some(v) if v.starts_with("file:///") => Some(v.trim_end_matches('/').to_string()),
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: ENV_OBJECT_ROOT,
                    value: v,
                    accepted: "file:///absolute/path",
                });
            }
        };
        let landing = match settings.get(ENV_LANDING) {
            Some(v) => parse_warehouse(&v).map_err(|_| ConfigError::Invalid {
                name: ENV_LANDING,
                value: v,
                accepted: "file:///absolute/path or s3://bucket/prefix",
            })?,
            None => default_landing(&warehouse),
        };
        Ok(Config {
            landing,
            weather: settings.weather()?,
            object_root,
            warehouse,
            catalog,
            storage: settings.storage()?,
            silver: SilverPolicy {
                allowed_lateness_micros: lateness_hours * MICROS_PER_HOUR,
            },
            gold: GoldPolicy { min_quality_score },
            commit_attempts,
            maintenance: settings.maintenance()?,
            max_object_bytes,
        })
    }
}

/// Settings looked up by name (the environment, or a map in tests); a blank value is unset.
struct Settings<F>(F);

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A whole number within `range` (`accepted` says so in the error), or `default`.
    fn number(
        &self,
        name: &'static str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        accepted: &'static str,
    ) -> Result<i64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError::Invalid {
                    name,
                    value: v,
                    accepted,
                }),
        }
    }

    fn maintenance(&self) -> Result<MaintenancePolicy, ConfigError> {
        Ok(MaintenancePolicy {
            target_file_bytes: self.number(
                ENV_TARGET_FILE_MB,
                128,
                1..=4096,
                "a whole number of MiB from 1 to 4096",
            )? as u64
                * 1024
                * 1024,
            snapshot_max_age_micros: self.number(
                ENV_SNAPSHOT_RETENTION_DAYS,
                7,
                0..=3650,
                "a whole number of days from 0 to 3650",
            )? * MICROS_PER_DAY,
            snapshots_kept: self.number(
                ENV_SNAPSHOTS_KEPT,
                5,
                1..=10_000,
                "a whole number from 1 to 10000",
            )? as usize,
            orphan_min_age_micros: self.number(
                ENV_ORPHAN_AGE_HOURS,
                24,
                0..=24 * 3650,
                "a whole number of hours from 0 to 87600",
            )? * MICROS_PER_HOUR,
        })
    }

    /// The object store's properties: endpoint (path-style addressing by default with one),
    /// region and credentials.
    fn storage(&self) -> Result<HashMap<String, String>, ConfigError> {
        let mut storage = HashMap::new();
        let mut path_style_default = false;
        if let Some(endpoint) = self.get(ENV_AWS_ENDPOINT_URL) {
            storage.insert(S3_ENDPOINT.to_string(), endpoint);
            // Custom endpoints (Garage, s3s-fs, LocalStack) need path-style addressing.
            path_style_default = true;
        }
        let path_style = match self.get(ENV_S3_PATH_STYLE).as_deref() {
            None => path_style_default,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: ENV_S3_PATH_STYLE,
                    value: other.to_string(),
                    accepted: "true or false",
                });
            }
        };
        storage.insert("s3.path-style-access".to_string(), path_style.to_string());
        for (env, prop) in [
            (ENV_AWS_REGION, "s3.region"),
            (ENV_AWS_ACCESS_KEY_ID, "s3.access-key-id"),
            (ENV_AWS_SECRET_ACCESS_KEY, "s3.secret-access-key"),
            (ENV_AWS_SESSION_TOKEN, "s3.session-token"),
        ] {
            if let Some(value) = self.get(env) {
                storage.insert(prop.to_string(), value);
            }
        }
        Ok(storage)
    }

    fn weather(&self) -> Result<WeatherSettings, ConfigError> {
        let defaults = WeatherSettings::default();
        Ok(WeatherSettings {
            url: match self.get(ENV_WEATHER_URL) {
                None => defaults.url,
                Some(url)
                    if (url.starts_with("http://") || url.starts_with("https://"))
                        && url::Url::parse(&url).is_ok() =>
                {
                    url
                }
                Some(url) => {
                    return Err(ConfigError::Invalid {
                        name: ENV_WEATHER_URL,
                        value: endpoint_of(&url),
                        accepted: "an http:// or https:// URL",
                    });
                }
            },
            timeout: std::time::Duration::from_secs(self.number(
                ENV_WEATHER_TIMEOUT_SECONDS,
                10,
                1..=300,
                "a whole number of seconds from 1 to 300",
            )? as u64),
            attempts: self.number(
                ENV_WEATHER_ATTEMPTS,
                4,
                1..=10,
                "a whole number from 1 to 10",
            )? as u32,
            days_back: self.number(
                ENV_WEATHER_DAYS_BACK,
                2,
                0..=92,
                "a whole number from 0 to 92",
            )? as i32,
            days_ahead: self.number(
                ENV_WEATHER_DAYS_AHEAD,
                6,
                0..=15,
                "a whole number from 0 to 15",
            )? as i32,
            ..defaults
        })
    }
}

impl Config {
    /// The embedded mode in `home`: `home/warehouse`, `home/catalog.db`, and S3
    /// notifications read from `home/objects/<bucket>/<key>`; other settings from `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value that is not accepted.
    pub fn embedded(
        home: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let home = absolute(home);
        let overrides = Overrides {
            warehouse: Some(format!("file://{}", home.join("warehouse").display())),
            catalog: Some(format!("sqlite://{}", home.join("catalog.db").display())),
        };
        let mut config = Self::from_lookup(&overrides, lookup)?;
        config.object_root = Some(format!("file://{}", home.join("objects").display()));
        Ok(config)
    }
}

/// The landing location beside a warehouse: `s3://bucket/landing`, or `<parent>/landing`.
fn default_landing(warehouse: &str) -> String {
    if let Some(rest) = warehouse.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or(rest);
        return format!("s3://{bucket}/landing");
    }
    match warehouse.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/landing"),
        None => format!("{warehouse}/landing"),
    }
}

fn parse_warehouse(value: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name: "--warehouse / BAKEHOUSE_WAREHOUSE",
        value: value.to_string(),
        accepted: "file:///absolute/path or s3://bucket/prefix",
    };
    let trimmed = value.trim().trim_end_matches('/');
    if let Some(path) = trimmed.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid());
        }
        Ok(trimmed.to_string())
    } else if let Some(rest) = trimmed.strip_prefix("s3://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid());
        }
        Ok(trimmed.to_string())
    } else {
        Err(invalid())
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_are_embedded_under_dot_bakehouse() {
        let config = Config::from_lookup(&Overrides::default(), lookup(&[])).unwrap();
        assert!(
            config.warehouse.starts_with("file:///")
                && config.warehouse.ends_with(".bakehouse/warehouse")
        );
        assert!(
            matches!(config.catalog, CatalogUri::Sqlite(ref p) if p.ends_with(".bakehouse/catalog.db"))
        );
        assert_eq!(config.gold.min_quality_score, 50);
        assert_eq!(config.silver.allowed_lateness_micros, 48 * MICROS_PER_HOUR);
    }

    #[test]
    fn flags_win_over_environment() {
        let overrides = Overrides {
            warehouse: Some("s3://lake/wh".into()),
            catalog: None,
        };
        let config = Config::from_lookup(
            &overrides,
            lookup(&[
                (ENV_WAREHOUSE, "file:///tmp/x"),
                (ENV_CATALOG, "postgres://u:p@127.0.0.1:5432/db"),
                (ENV_AWS_ENDPOINT_URL, "http://127.0.0.1:3900"),
            ]),
        )
        .unwrap();
        assert_eq!(config.warehouse, "s3://lake/wh");
        assert_eq!(
            config.catalog,
            CatalogUri::Postgres("postgres://u:p@127.0.0.1:5432/db?sslmode=prefer".into())
        );
        assert_eq!(
            config
                .storage
                .get("s3.path-style-access")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn a_postgres_catalog_gets_tls_unless_its_url_says_otherwise() {
        let url = |value: &str| match CatalogUri::parse(value).unwrap() {
            CatalogUri::Postgres(url) => url,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            url("postgres://u:p@db.example.com:5432/lake"),
            "postgres://u:p@db.example.com:5432/lake?sslmode=verify-full"
        );
        assert_eq!(
            url("postgres://u:p@10.0.0.7/lake?application_name=b"),
            "postgres://u:p@10.0.0.7/lake?application_name=b&sslmode=verify-full"
        );
        for local in ["127.0.0.1:5432", "localhost", "[::1]:5432"] {
            assert_eq!(
                url(&format!("postgres://u:p@{local}/lake")),
                format!("postgres://u:p@{local}/lake?sslmode=prefer")
            );
        }
        let chosen = "postgresql://u:p@db.example.com/lake?sslmode=disable";
        assert_eq!(url(chosen), chosen);
        let spelled = "postgresql://u:p@db.example.com/lake?ssl-mode=Require";
        assert_eq!(url(spelled), spelled);
        // The host the driver connects to decides, wherever the URL names it.
        for (given, expected) in [
            (
                "postgres://u:p@localhost/lake?hostaddr=10.0.0.7",
                "postgres://u:p@localhost/lake?hostaddr=10.0.0.7&sslmode=verify-full",
            ),
            (
                "postgres:///lake?host=db.example.com",
                "postgres:///lake?host=db.example.com&sslmode=verify-full",
            ),
            (
                "postgres:///lake?host=/var/run/postgresql",
                "postgres:///lake?host=/var/run/postgresql&sslmode=prefer",
            ),
            (
                "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/lake",
                "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/lake?sslmode=prefer",
            ),
        ] {
            assert_eq!(url(given), expected);
        }
        assert_eq!(
            url("postgres://u:p@db.example.com/lake#note"),
            "postgres://u:p@db.example.com/lake?sslmode=verify-full#note"
        );
        let missing = CatalogUri::parse("postgres://u:p@h/db?sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("sslrootcert") && missing.contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        let err = CatalogUri::parse("postgres://u:s3cret@h/db?sslmode=verify_full")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode") && err.contains("\"verify_full\"") && err.contains("verify-ca"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn catalog_passwords_never_reach_messages_or_debug_output() {
        for (url, shown) in [
            (
                "postgres://bakehouse:s3cret@db.internal:5432/lake",
                "postgres://bakehouse:***@db.internal:5432/lake",
            ),
            (
                "postgresql://u:s3cret@h/db?sslmode=require&password=s3cret",
                "postgresql://u:***@h/db?sslmode=require&password=***",
            ),
            (
                "postgress://u:s3cret@h:5432/db",
                "postgress://u:***@h:5432/db",
            ),
            ("u:s3cret@h:5432/db", "***@h:5432/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://u:s3/c?r#et@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?sslpassword=s3cret",
                "postgres://u@h/db?sslpassword=***",
            ),
            (
                "host=h user=u password=s3cret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        // A mistyped scheme is refused without echoing the password.
        let err = CatalogUri::parse("postgress://u:s3cret@h:5432/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgress://u:***@h:5432/db"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let debug = format!(
            "{:?}",
            CatalogUri::parse("postgres://u:s3cret@h/db").unwrap()
        );
        assert!(
            !debug.contains("s3cret") && debug.contains("u:***@h"),
            "{debug}"
        );
        let config = Config::from_lookup(
            &Overrides::default(),
            lookup(&[
                (ENV_CATALOG, "postgres://u:s3cret@h/db"),
                (ENV_AWS_SECRET_ACCESS_KEY, "aws-s3cret"),
                (ENV_AWS_SESSION_TOKEN, "tok-s3cret"),
            ]),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("s3.secret-access-key"),
            "{debug}"
        );
    }

    #[test]
    fn bad_values_name_the_setting_and_the_accepted_values() {
        for (name, value, accepted) in [
            (ENV_WAREHOUSE, "/tmp/x", "file:///absolute/path"),
            (ENV_CATALOG, "mysql://x", "sqlite:///"),
            (ENV_MIN_QUALITY_SCORE, "101", "0 to 100"),
            (ENV_ALLOWED_LATENESS_HOURS, "-1", "hours"),
            (ENV_S3_PATH_STYLE, "maybe", "true or false"),
            (ENV_MAX_OBJECT_BYTES, "64MB", "whole number of bytes"),
        ] {
            let err = Config::from_lookup(&Overrides::default(), lookup(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(name) && err.contains(value) && err.contains(accepted),
                "{err}"
            );
        }
    }
}
