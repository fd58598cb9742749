//! Schema validation (SPEC §3): raw input records (`decode.rs`) → typed bronze rows, or a
//! [`Rejection`] with an error code. Pure: no I/O, no clock; the caller stamps lineage.

use base64::Engine;
use serde_json::Value;

use super::dataset::Dataset;
use super::decode::{Decoded, RawRecord};
use super::fields::{Field, Fields, JsonRecord};
use super::money::Money;
use super::records::*;
use super::rejection::{RejectCode, Rejection};
use super::time::parse_timestamp;

/// Largest accepted record, in bytes (SPEC §3: 1 MiB).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Largest line revenue accepted, in cents: keeps `decimal(14,2)` daily sums far from overflow.
pub const MAX_LINE_REVENUE_CENTS: i64 = 1_000_000_000_000 - 1;
/// Statuses accepted for `operational_status`.
pub const OPERATIONAL_STATUSES: [&str; 6] = [
    "running",
    "idle",
    "starting",
    "stopping",
    "maintenance",
    "error",
];
/// Channels accepted for a sale's optional `channel`.
pub const CHANNELS: [&str; 3] = ["in_store", "online", "app"];
/// Default `interval_seconds` of a reading (SPEC §2).
pub const DEFAULT_INTERVAL_SECONDS: i32 = 30;

/// A validated record, ready for its bronze table.
#[derive(Clone, Debug, PartialEq)]
pub enum BronzeRecord {
    Sale(BronzeSale),
    Reading(BronzeReading),
    Inventory(BronzeInventory),
    Store(BronzeStore),
    Product(BronzeProduct),
    Customer(BronzeCustomer),
    Equipment(BronzeEquipment),
    Weather(BronzeWeather),
}

impl BronzeRecord {
    /// The text of a string field `name` (`None` when null or not a string field).
    pub fn field_text(&self, name: &str) -> Option<String> {
        let value = match self {
            BronzeRecord::Sale(r) => serde_json::to_value(r),
            BronzeRecord::Reading(r) => serde_json::to_value(r),
            BronzeRecord::Inventory(r) => serde_json::to_value(r),
            BronzeRecord::Store(r) => serde_json::to_value(r),
            BronzeRecord::Product(r) => serde_json::to_value(r),
            BronzeRecord::Customer(r) => serde_json::to_value(r),
            BronzeRecord::Equipment(r) => serde_json::to_value(r),
            BronzeRecord::Weather(r) => serde_json::to_value(r),
        };
        match value.ok()?.get(name)? {
            Value::String(text) => Some(text.clone()),
            _ => None,
        }
    }
}

/// Validates one raw record of `dataset`, stamping `lineage` on the result.
///
/// # Errors
/// A [`Rejection`] naming the first failing check; the caller quarantines the record.
pub fn validate(
    dataset: Dataset,
    record: &RawRecord,
    lineage: &Lineage,
) -> Result<BronzeRecord, Rejection> {
    if record.bytes.len() > MAX_RECORD_BYTES {
        return Err(Rejection::new(
            RejectCode::TooLarge,
            format!(
                "record is {} bytes; the limit is {MAX_RECORD_BYTES}",
                record.bytes.len()
            ),
        ));
    }
    let (fields, payload) = decode(record)?;
    let o = Obj(&fields);
    let l = lineage.clone();
    Ok(match dataset {
        Dataset::SalesEvents => sale(&o, payload, l)?,
        Dataset::EquipmentMetrics => reading(&o, payload, l)?,
        Dataset::InventoryUpdates => BronzeRecord::Inventory(BronzeInventory {
            update_id: o.id("update_id")?,
            event_time: o.timestamp("event_time")?,
            store_id: o.int("store_id")?,
            product_id: o.int("product_id")?,
            beginning_stock: o.int("beginning_stock")?,
            restocked_quantity: o.int("restocked_quantity")?,
            sold_quantity: o.int("sold_quantity")?,
            waste_quantity: o.int("waste_quantity")?,
            reported_by: o.opt_str("reported_by", None)?,
            payload,
            source: l.source,
            source_ref: l.source_ref,
            ingestion_time: l.ingestion_time,
        }),
        Dataset::Stores => BronzeRecord::Store(BronzeStore {
            store_id: o.int("store_id")?,
            name: o.text("name")?,
            city: o.text("city")?,
            region: o.text("region")?,
            opening_hour: o.text("opening_hour")?,
            closing_hour: o.text("closing_hour")?,
            manager: o.text("manager")?,
            payload,
            source: l.source,
            source_ref: l.source_ref,
            ingestion_time: l.ingestion_time,
            latitude: o.coordinate("latitude", 90.0)?,
            longitude: o.coordinate("longitude", 180.0)?,
        }),
        Dataset::Weather => weather(&o, payload, l)?,
        Dataset::Products => BronzeRecord::Product(BronzeProduct {
            product_id: o.int("product_id")?,
            name: o.text("name")?,
            category: o.text("category")?,
            list_price: o.opt_money("list_price")?,
            payload,
            source: l.source,
            source_ref: l.source_ref,
            ingestion_time: l.ingestion_time,
        }),
        Dataset::Customers => BronzeRecord::Customer(BronzeCustomer {
            customer_id: match o.text("customer_id")? {
                Some(id) if (1..=64).contains(&id.chars().count()) => id,
                Some(_) => return Err(bad_length("customer_id", 1, 64)),
                None => return Err(missing("customer_id")),
            },
            loyalty_tier: o.text("loyalty_tier")?,
            city: o.text("city")?,
            payload,
            source: l.source,
            source_ref: l.source_ref,
            ingestion_time: l.ingestion_time,
        }),
        Dataset::Equipment => BronzeRecord::Equipment(BronzeEquipment {
            equipment_id: o.int("equipment_id")?,
            store_id: o.opt_int("store_id")?,
            equipment_type: o.text("equipment_type")?,
            name: o.text("name")?,
            payload,
            source: l.source,
            source_ref: l.source_ref,
            ingestion_time: l.ingestion_time,
        }),
    })
}

/// A record's fields and its payload text (the JSON object as received, or a CSV row as one).
fn decode(record: &RawRecord) -> Result<(Fields<'_>, String), Rejection> {
    Ok(match &record.decoded {
        Decoded::Rejected(rejection) => return Err(rejection.clone()),
        Decoded::Fields(map) => (Fields::of_map(map), Value::Object(map.clone()).to_string()),
        Decoded::Json => {
            let text = std::str::from_utf8(&record.bytes)
                .map_err(|e| Rejection::new(RejectCode::NotUtf8, format!("not UTF-8: {e}")))?;
            match JsonRecord::parse(text)
                .map_err(|e| Rejection::new(RejectCode::NotJson, format!("not JSON: {e}")))?
            {
                JsonRecord::Object(fields) => (fields, text.trim().to_string()),
                JsonRecord::NotObject(found) => {
                    return Err(Rejection::new(
                        RejectCode::NotObject,
                        format!("expected a JSON object, found {found}"),
                    ));
                }
            }
        }
    })
}

/// A sales line item (SPEC §2 sales-events).
fn sale(o: &Obj, payload: String, l: Lineage) -> Result<BronzeRecord, Rejection> {
    let event_id = o.id("event_id")?;
    let transaction_id = o.opt_str("transaction_id", Some((1, 64)))?;
    let event_time = o.timestamp("event_time")?;
    let store_id = o.int("store_id")?;
    let product_id = o.int("product_id")?;
    let customer_id = o.opt_str("customer_id", Some((0, 64)))?;
    let quantity = o.int("quantity")?;
    let unit_price = o.money("unit_price")?;
    let promotion_id = o.opt_str("promotion_id", None)?;
    let channel = o.opt_str("channel", None)?;
    if let Some(channel) = channel.as_deref().filter(|c| !CHANNELS.contains(c)) {
        return Err(Rejection::new(
            RejectCode::InvalidValue,
            format!("channel {channel:?} is not one of {}", CHANNELS.join(", ")),
        ));
    }
    let revenue = unit_price.times(i64::from(quantity));
    if revenue.is_none_or(|r| r.0.abs() > MAX_LINE_REVENUE_CENTS) {
        return Err(Rejection::new(
            RejectCode::OutOfRange,
            "quantity × unit_price exceeds 9999999999.99",
        ));
    }
    Ok(BronzeRecord::Sale(BronzeSale {
        event_id,
        transaction_id,
        event_time,
        store_id,
        product_id,
        customer_id,
        quantity,
        unit_price,
        promotion_id,
        channel,
        payload,
        source: l.source,
        source_ref: l.source_ref,
        ingestion_time: l.ingestion_time,
    }))
}

/// An equipment reading (SPEC §2 equipment-metrics).
fn reading(o: &Obj, payload: String, l: Lineage) -> Result<BronzeRecord, Rejection> {
    let metric_id = o.id("metric_id")?;
    let equipment_id = o.int("equipment_id")?;
    let event_time = o.timestamp("event_time")?;
    let operational_status = o.string("operational_status")?;
    if !OPERATIONAL_STATUSES.contains(&operational_status.as_str()) {
        return Err(Rejection::new(
            RejectCode::InvalidValue,
            format!(
                "operational_status {operational_status:?} is not one of {}",
                OPERATIONAL_STATUSES.join(", ")
            ),
        ));
    }
    let power_kw = o.number("power_kw")?;
    let temperature_c = o.opt_number("temperature_c")?;
    let interval_seconds = o
        .opt_int("interval_seconds")?
        .unwrap_or(DEFAULT_INTERVAL_SECONDS);
    if interval_seconds <= 0 {
        return Err(Rejection::new(
            RejectCode::InvalidValue,
            format!("interval_seconds must be > 0, got {interval_seconds}"),
        ));
    }
    let readings = match o.get("readings") {
        None => None,
        Some(Field::Other(v @ Value::Object(_))) => Some(v.to_string()),
        Some(other) => return Err(wrong_type("readings", "a JSON object", other)),
    };
    Ok(BronzeRecord::Reading(BronzeReading {
        metric_id,
        equipment_id,
        event_time,
        operational_status,
        power_kw,
        temperature_c,
        interval_seconds,
        readings,
        payload,
        source: l.source,
        source_ref: l.source_ref,
        ingestion_time: l.ingestion_time,
    }))
}

/// A day of a store's weather, as the weather function lands it.
fn weather(o: &Obj, payload: String, l: Lineage) -> Result<BronzeRecord, Rejection> {
    if let Some(body) = o.get("malformed_response") {
        return Err(Rejection::new(
            RejectCode::InvalidValue,
            format!(
                "the weather API answered with no daily weather: {}",
                match body {
                    Field::Str(s) => s.chars().take(200).collect(),
                    other => other.json_type().to_string(),
                }
            ),
        ));
    }
    Ok(BronzeRecord::Weather(BronzeWeather {
        store_id: o.int("store_id")?,
        date: o.date("date")?,
        pulled_at: o.timestamp("pulled_at")?,
        temperature_max_c: o.opt_number("temperature_max_c")?,
        temperature_min_c: o.opt_number("temperature_min_c")?,
        precipitation_mm: o.opt_number("precipitation_mm")?,
        weather_code: o.opt_int("weather_code")?,
        payload,
        source: l.source,
        source_ref: l.source_ref,
        ingestion_time: l.ingestion_time,
    }))
}

/// The quarantine row for a rejected record.
pub fn quarantine_row(
    dataset: &str,
    record: &RawRecord,
    rejection: &Rejection,
    lineage: &Lineage,
) -> QuarantineRow {
    let (raw, raw_encoding) = match std::str::from_utf8(&record.bytes) {
        Ok(text) => (text.to_string(), "text"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&record.bytes),
            "base64",
        ),
    };
    QuarantineRow {
        dataset: dataset.to_string(),
        source: lineage.source.clone(),
        source_ref: lineage.source_ref.clone(),
        error_code: rejection.code.code().to_string(),
        error_message: rejection.message.clone(),
        raw,
        raw_encoding: raw_encoding.to_string(),
        ingestion_time: lineage.ingestion_time,
    }
}

fn missing(field: &str) -> Rejection {
    Rejection::new(
        RejectCode::MissingField,
        format!("required field {field} is missing or null"),
    )
}

fn wrong_type(field: &str, expected: &str, found: &Field) -> Rejection {
    Rejection::new(
        RejectCode::WrongType,
        format!(
            "field {field} must be {expected}, found {}",
            found.json_type()
        ),
    )
}

fn bad_length(field: &str, min: usize, max: usize) -> Rejection {
    Rejection::new(
        RejectCode::BadLength,
        format!("field {field} must have {min}–{max} characters"),
    )
}

/// Typed access to a record's fields; each accessor names the field in its rejection.
struct Obj<'r, 'a>(&'r Fields<'a>);

impl<'a> Obj<'_, 'a> {
    /// The field's value; absent and null are the same.
    fn get(&self, field: &str) -> Option<&Field<'a>> {
        self.0.get(field)
    }

    fn string(&self, field: &str) -> Result<String, Rejection> {
        match self.get(field) {
            None => Err(missing(field)),
            Some(Field::Str(s)) => Ok(s.to_string()),
            Some(other) => Err(wrong_type(field, "a string", other)),
        }
    }

    /// A required identifier: a string of 1–64 characters.
    fn id(&self, field: &str) -> Result<String, Rejection> {
        let s = self.string(field)?;
        if !(1..=64).contains(&s.chars().count()) {
            return Err(bad_length(field, 1, 64));
        }
        Ok(s)
    }

    fn opt_str(
        &self,
        field: &str,
        length: Option<(usize, usize)>,
    ) -> Result<Option<String>, Rejection> {
        match self.get(field) {
            None => Ok(None),
            Some(Field::Str(s)) => match length {
                Some((min, max)) if !(min..=max).contains(&s.chars().count()) => {
                    Err(bad_length(field, min, max))
                }
                _ => Ok(Some(s.to_string())),
            },
            Some(other) => Err(wrong_type(field, "a string", other)),
        }
    }

    /// A lenient reference attribute: a string, or a number/boolean kept as its text.
    fn text(&self, field: &str) -> Result<Option<String>, Rejection> {
        match self.get(field) {
            None => Ok(None),
            Some(Field::Str(s)) => Ok(Some(s.to_string())),
            Some(Field::Number(n)) => Ok(Some(Value::Number(n.clone()).to_string())),
            Some(Field::Other(v @ Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(wrong_type(field, "a string", other)),
        }
    }

    fn opt_int(&self, field: &str) -> Result<Option<i32>, Rejection> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let Field::Number(n) = value else {
            return Err(wrong_type(field, "an integer", value));
        };
        let whole = if let Some(i) = n.as_i64() {
            Some(i as f64)
        } else {
            n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0)
        };
        match whole {
            None => Err(wrong_type(field, "an integer", value)),
            Some(w) if w < f64::from(i32::MIN) || w > f64::from(i32::MAX) => Err(Rejection::new(
                RejectCode::OutOfRange,
                format!("field {field} = {n} does not fit a 32-bit integer"),
            )),
            Some(w) => Ok(Some(w as i32)),
        }
    }

    fn int(&self, field: &str) -> Result<i32, Rejection> {
        self.opt_int(field)?.ok_or_else(|| missing(field))
    }

    fn opt_number(&self, field: &str) -> Result<Option<f64>, Rejection> {
        match self.get(field) {
            None => Ok(None),
            Some(Field::Number(n)) => {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(Some)
                    .ok_or_else(|| {
                        Rejection::new(
                            RejectCode::OutOfRange,
                            format!("field {field} is not finite"),
                        )
                    })
            }
            Some(other) => Err(wrong_type(field, "a number", other)),
        }
    }

    fn number(&self, field: &str) -> Result<f64, Rejection> {
        self.opt_number(field)?.ok_or_else(|| missing(field))
    }

    /// An optional WGS84 coordinate within ±`limit` degrees.
    fn coordinate(&self, field: &str, limit: f64) -> Result<Option<f64>, Rejection> {
        match self.opt_number(field)? {
            Some(degrees) if degrees.abs() > limit => Err(Rejection::new(
                RejectCode::OutOfRange,
                format!("field {field} = {degrees} is not within ±{limit} degrees"),
            )),
            degrees => Ok(degrees),
        }
    }

    /// A calendar date, `YYYY-MM-DD`, as days since the epoch.
    fn date(&self, field: &str) -> Result<i32, Rejection> {
        let text = self.string(field)?;
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(super::time::days_from_date)
            .map_err(|_| {
                Rejection::new(
                    RejectCode::BadTimestamp,
                    format!("field {field} = {text:?} is not a YYYY-MM-DD date"),
                )
            })
    }

    fn timestamp(&self, field: &str) -> Result<i64, Rejection> {
        match self.get(field) {
            None => Err(missing(field)),
            Some(Field::Str(s)) => parse_timestamp(s).ok_or_else(|| {
                Rejection::new(
                    RejectCode::BadTimestamp,
                    format!("field {field} = {s:?} is not an RFC 3339 timestamp with offset"),
                )
            }),
            Some(other) => Err(wrong_type(field, "an RFC 3339 string", other)),
        }
    }

    /// A `decimal(10,2)` amount: a number with at most two decimals (text accepted for CSV).
    fn opt_money(&self, field: &str) -> Result<Option<Money>, Rejection> {
        let money = match self.get(field) {
            None => return Ok(None),
            Some(Field::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i.checked_mul(100).map(Money),
                (None, Some(f)) => Money::from_f64(f),
                _ => None,
            },
            Some(other) => return Err(wrong_type(field, "a number", other)),
        };
        match money {
            None => Err(Rejection::new(
                RejectCode::InvalidValue,
                format!("field {field} must be a number with at most two decimals"),
            )),
            Some(m) if !m.fits_precision(10) => Err(Rejection::new(
                RejectCode::OutOfRange,
                format!("field {field} = {m} does not fit decimal(10,2)"),
            )),
            Some(m) => Ok(Some(m)),
        }
    }

    fn money(&self, field: &str) -> Result<Money, Rejection> {
        self.opt_money(field)?.ok_or_else(|| missing(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decode::decode_csv;
    use bytes::Bytes;

    fn lineage() -> Lineage {
        Lineage {
            source: "file".into(),
            source_ref: "k:1".into(),
            ingestion_time: 1_000,
        }
    }

    fn json(text: &str) -> RawRecord {
        RawRecord {
            source_ref: "k:1".into(),
            bytes: Bytes::copy_from_slice(text.as_bytes()),
            decoded: Decoded::Json,
        }
    }

    const SALE: &str = r#"{"event_id":"e1","transaction_id":"t1","event_time":"2026-03-01T10:00:00+01:00","store_id":1,"product_id":2,"customer_id":null,"quantity":3,"unit_price":4.35,"extra":"kept"}"#;

    fn sale_with(field: &str, value: serde_json::Value) -> RawRecord {
        let mut v: Value = serde_json::from_str(SALE).unwrap();
        if value.is_null() && field.starts_with('-') {
            v.as_object_mut().unwrap().remove(&field[1..]);
        } else {
            v[field] = value;
        }
        json(&v.to_string())
    }

    fn code(dataset: Dataset, record: &RawRecord) -> &'static str {
        validate(dataset, record, &lineage())
            .unwrap_err()
            .code
            .code()
    }

    #[test]
    fn a_valid_sale_is_typed_and_keeps_its_payload() {
        let Ok(BronzeRecord::Sale(sale)) = validate(Dataset::SalesEvents, &json(SALE), &lineage())
        else {
            panic!("expected a sale")
        };
        assert_eq!(
            sale.event_time,
            crate::domain::time::parse_timestamp("2026-03-01T09:00:00Z").unwrap()
        );
        assert_eq!(sale.unit_price, Money(435));
        assert_eq!(sale.customer_id, None);
        assert!(sale.payload.contains("\"extra\":\"kept\""));
        assert_eq!(
            (sale.source_ref.as_str(), sale.ingestion_time),
            ("k:1", 1_000)
        );
    }

    #[test]
    fn every_error_code_is_produced() {
        fn j(v: impl serde::Serialize) -> Value {
            serde_json::to_value(v).unwrap()
        }
        let cases: Vec<(RejectCode, Dataset, RawRecord)> = vec![
            (
                RejectCode::NotUtf8,
                Dataset::SalesEvents,
                RawRecord {
                    source_ref: "k".into(),
                    bytes: Bytes::from_static(&[0xff, 0xfe]),
                    decoded: Decoded::Json,
                },
            ),
            (
                RejectCode::NotJson,
                Dataset::SalesEvents,
                json("{\"event_id\": "),
            ),
            (RejectCode::NotObject, Dataset::SalesEvents, json("[1, 2]")),
            (
                RejectCode::TooLarge,
                Dataset::SalesEvents,
                json(&format!(
                    "{{\"event_id\":\"{}\"}}",
                    "x".repeat(MAX_RECORD_BYTES)
                )),
            ),
            (
                RejectCode::MissingField,
                Dataset::SalesEvents,
                sale_with("-store_id", Value::Null),
            ),
            (
                RejectCode::MissingField,
                Dataset::SalesEvents,
                sale_with("event_id", Value::Null),
            ),
            (
                RejectCode::WrongType,
                Dataset::SalesEvents,
                sale_with("store_id", j("one")),
            ),
            (
                RejectCode::WrongType,
                Dataset::SalesEvents,
                sale_with("quantity", j(1.5)),
            ),
            (
                RejectCode::WrongType,
                Dataset::SalesEvents,
                sale_with("event_id", j(7)),
            ),
            (
                RejectCode::BadTimestamp,
                Dataset::SalesEvents,
                sale_with("event_time", j("2026-03-01T10:00:00")),
            ),
            (
                RejectCode::BadTimestamp,
                Dataset::SalesEvents,
                sale_with("event_time", j("10000-01-01T00:00:00Z")),
            ),
            (
                RejectCode::BadLength,
                Dataset::SalesEvents,
                sale_with("event_id", j("x".repeat(65))),
            ),
            (
                RejectCode::BadLength,
                Dataset::SalesEvents,
                sale_with("event_id", j("")),
            ),
            (
                RejectCode::BadLength,
                Dataset::SalesEvents,
                sale_with("customer_id", j("c".repeat(65))),
            ),
            (
                RejectCode::OutOfRange,
                Dataset::SalesEvents,
                sale_with("store_id", j(3_000_000_000u64)),
            ),
            (
                RejectCode::OutOfRange,
                Dataset::SalesEvents,
                sale_with("unit_price", j(100_000_000.0)),
            ),
            (
                RejectCode::OutOfRange,
                Dataset::SalesEvents,
                json(
                    &SALE
                        .replace("\"quantity\":3", "\"quantity\":2000000000")
                        .replace("4.35", "99.99"),
                ),
            ),
            (
                RejectCode::InvalidValue,
                Dataset::SalesEvents,
                sale_with("unit_price", j(4.355)),
            ),
            (
                RejectCode::InvalidValue,
                Dataset::EquipmentMetrics,
                json(
                    r#"{"metric_id":"m","equipment_id":1,"event_time":"2026-03-01T10:00:00Z","operational_status":"broken","power_kw":1}"#,
                ),
            ),
            (
                RejectCode::InvalidValue,
                Dataset::EquipmentMetrics,
                json(
                    r#"{"metric_id":"m","equipment_id":1,"event_time":"2026-03-01T10:00:00Z","operational_status":"idle","power_kw":1,"interval_seconds":0}"#,
                ),
            ),
            (
                RejectCode::WrongType,
                Dataset::EquipmentMetrics,
                json(
                    r#"{"metric_id":"m","equipment_id":1,"event_time":"2026-03-01T10:00:00Z","operational_status":"idle","power_kw":1,"readings":[1]}"#,
                ),
            ),
            (
                RejectCode::BadCsvRow,
                Dataset::SalesEvents,
                decode_csv(
                    b"event_id,store_id\ne1,1,extra\n",
                    "k",
                    Dataset::SalesEvents,
                )
                .remove(0),
            ),
            (
                RejectCode::BadEncoding,
                Dataset::SalesEvents,
                RawRecord {
                    source_ref: "k".into(),
                    bytes: Bytes::new(),
                    decoded: Decoded::Rejected(Rejection::new(RejectCode::BadEncoding, "x")),
                },
            ),
        ];
        for (expected, dataset, record) in &cases {
            assert_eq!(
                code(*dataset, record),
                expected.code(),
                "{expected:?} for {:?}",
                String::from_utf8_lossy(&record.bytes)
            );
        }
        // Every code is exercised here or by the ingest hop (unknown_dataset, unsupported_file).
        let covered: std::collections::HashSet<_> = cases.iter().map(|(c, _, _)| *c).collect();
        let by_hop = [RejectCode::UnknownDataset, RejectCode::UnsupportedFile];
        assert!(
            RejectCode::ALL
                .iter()
                .all(|c| covered.contains(c) || by_hop.contains(c))
        );
    }

    #[test]
    fn hostile_json_is_quarantined_not_fatal() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(code(Dataset::SalesEvents, &json(&deep)), "not_json");
        assert_eq!(
            code(Dataset::SalesEvents, &json(&SALE.replace("4.35", "NaN"))),
            "not_json"
        );
        assert_eq!(
            code(Dataset::SalesEvents, &json(&SALE.replace("4.35", "1e400"))),
            "not_json"
        );
        assert_eq!(code(Dataset::SalesEvents, &json("")), "not_json");
        assert_eq!(code(Dataset::SalesEvents, &json("null")), "not_object");
        // Duplicate keys: the last one counts, as in most JSON readers.
        let dup = SALE.replace("\"store_id\":1", "\"store_id\":\"x\",\"store_id\":1");
        assert!(validate(Dataset::SalesEvents, &json(&dup), &lineage()).is_ok());
        // Exactly 1 MiB is accepted; one byte more is not.
        let pad = |n: usize| SALE.replacen('{', &format!("{{\"pad\":\"{}\",", "x".repeat(n)), 1);
        let base = pad(0).len();
        assert!(
            validate(
                Dataset::SalesEvents,
                &json(&pad(MAX_RECORD_BYTES - base)),
                &lineage()
            )
            .is_ok()
        );
        assert_eq!(
            code(
                Dataset::SalesEvents,
                &json(&pad(MAX_RECORD_BYTES - base + 1))
            ),
            "too_large"
        );
    }

    #[test]
    fn readings_default_their_interval_and_keep_readings_as_json() {
        let record = json(
            r#"{"metric_id":"m","equipment_id":1,"event_time":"2026-03-01T10:00:00Z","operational_status":"running","power_kw":2,"temperature_c":null,"readings":{"rpm":3}}"#,
        );
        let Ok(BronzeRecord::Reading(r)) = validate(Dataset::EquipmentMetrics, &record, &lineage())
        else {
            panic!()
        };
        assert_eq!(
            (r.interval_seconds, r.power_kw, r.temperature_c),
            (30, 2.0, None)
        );
        assert_eq!(r.readings.as_deref(), Some(r#"{"rpm":3}"#));
    }

    #[test]
    fn reference_attributes_are_lenient_text() {
        let record = json(r#"{"store_id":1,"name":"A","opening_hour":6,"closing_hour":"20:00"}"#);
        let Ok(BronzeRecord::Store(s)) = validate(Dataset::Stores, &record, &lineage()) else {
            panic!()
        };
        assert_eq!(
            (s.opening_hour.as_deref(), s.closing_hour.as_deref(), s.city),
            (Some("6"), Some("20:00"), None)
        );
    }

    #[test]
    fn csv_rows_are_typed_as_in_json_and_empty_fields_are_null() {
        let csv = "event_id,event_time,store_id,product_id,customer_id,quantity,unit_price\r\n\
                   e1,2026-03-01T10:00:00Z,1,2,,3,4.35\r\n\
                   \"e,2\",2026-03-01T10:00:00Z,1,2,\"multi\nline\",3,4.35\r\n\
                   e3,2026-03-01T10:00:00Z,x,2,,3,4.35\n";
        let records = decode_csv(csv.as_bytes(), "k", Dataset::SalesEvents);
        assert_eq!(
            records
                .iter()
                .map(|r| r.source_ref.as_str())
                .collect::<Vec<_>>(),
            ["k:2", "k:3", "k:5"]
        );
        let Ok(BronzeRecord::Sale(first)) = validate(Dataset::SalesEvents, &records[0], &lineage())
        else {
            panic!()
        };
        assert_eq!(
            (first.customer_id, first.quantity, first.unit_price),
            (None, 3, Money(435))
        );
        let Ok(BronzeRecord::Sale(second)) =
            validate(Dataset::SalesEvents, &records[1], &lineage())
        else {
            panic!()
        };
        assert_eq!(
            (second.event_id.as_str(), second.customer_id.as_deref()),
            ("e,2", Some("multi\nline"))
        );
        assert_eq!(code(Dataset::SalesEvents, &records[2]), "wrong_type");
        assert_eq!(
            &records[2].bytes[..],
            b"e3,2026-03-01T10:00:00Z,x,2,,3,4.35"
        );
    }

    #[test]
    fn quarantine_keeps_raw_bytes_as_text_or_base64() {
        let record = RawRecord {
            source_ref: "k:9".into(),
            bytes: Bytes::from_static(&[0xff, b'a']),
            decoded: Decoded::Json,
        };
        let rejection = validate(Dataset::SalesEvents, &record, &lineage()).unwrap_err();
        let row = quarantine_row("sales-events", &record, &rejection, &lineage());
        assert_eq!(
            (
                row.raw.as_str(),
                row.raw_encoding.as_str(),
                row.error_code.as_str()
            ),
            ("/2E=", "base64", "not_utf8")
        );
        let text = quarantine_row("sales-events", &json("[1]"), &rejection, &lineage());
        assert_eq!(
            (text.raw.as_str(), text.raw_encoding.as_str()),
            ("[1]", "text")
        );
    }
}
