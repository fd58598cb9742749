//! Splitting input into raw records before validation: JSON lines (one record per line) and CSV
//! files (a header row, fields typed as in JSON). Pure: no I/O.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::dataset::Dataset;
use super::rejection::{RejectCode, Rejection};

/// One input record before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// Where it came from: `topic/partition/offset` or `key:line`.
    pub source_ref: String,
    /// The raw bytes as received (a JSON line, a CSV row, a Kafka value).
    pub bytes: Bytes,
    /// Already split into fields (CSV rows), or a decoding failure found before validation.
    pub decoded: Decoded,
}

/// What the decoder already knows about a raw record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// The bytes should be one JSON object.
    Json,
    /// Fields read from a CSV row, typed as SPEC §2 says ("as in JSON").
    Fields(Map<String, Value>),
    /// The decoder already rejected it.
    Rejected(Rejection),
}

/// The kind of value a column holds, for typing CSV fields "as in JSON".
#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldKind {
    Number,
    Object,
    Text,
}

fn field_kind(dataset: Dataset, field: &str) -> FieldKind {
    const NUMERIC: [&str; 19] = [
        "store_id",
        "product_id",
        "quantity",
        "unit_price",
        "equipment_id",
        "power_kw",
        "temperature_c",
        "interval_seconds",
        "beginning_stock",
        "restocked_quantity",
        "sold_quantity",
        "waste_quantity",
        "list_price",
        "latitude",
        "longitude",
        "temperature_max_c",
        "temperature_min_c",
        "precipitation_mm",
        "weather_code",
    ];
    match field {
        "readings" if dataset == Dataset::EquipmentMetrics => FieldKind::Object,
        f if NUMERIC.contains(&f) => FieldKind::Number,
        _ => FieldKind::Text,
    }
}

/// Splits JSON lines of file `key` into records, one per non-blank line (`key:line`, 1-based;
/// `bytes` starts at line `first_line`). A UTF-8 byte-order mark at the start of the file and
/// `\r` line ends are accepted.
pub fn decode_jsonl(bytes: impl Into<Bytes>, key: &str, first_line: usize) -> Vec<RawRecord> {
    let bytes: Bytes = bytes.into();
    let start = match first_line {
        1 if bytes.starts_with(b"\xEF\xBB\xBF") => 3,
        _ => 0,
    };
    let mut records = Vec::with_capacity(bytes.len() / 128);
    let ends = memchr::memchr_iter(b'\n', &bytes[start..]).map(|end| start + end);
    let mut line_start = start;
    for (index, line_end) in ends.chain(std::iter::once(bytes.len())).enumerate() {
        let line = &bytes[line_start..line_end];
        if !line.iter().all(u8::is_ascii_whitespace) {
            let end = line_end - usize::from(line.ends_with(b"\r"));
            records.push(RawRecord {
                source_ref: format!("{key}:{}", first_line + index),
                bytes: bytes.slice(line_start..end),
                decoded: Decoded::Json,
            });
        }
        line_start = line_end + 1;
    }
    records
}

/// Splits a CSV file (header row first) into records (`key:line`, the row's first line).
/// Empty fields are null; numeric columns are typed as JSON numbers when they parse as one.
pub fn decode_csv(bytes: &[u8], key: &str, dataset: Dataset) -> Vec<RawRecord> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header: Vec<String> = match reader.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect(),
        Err(e) => {
            return vec![RawRecord {
                source_ref: format!("{key}:1"),
                bytes: bytes
                    .iter()
                    .take_while(|b| **b != b'\n')
                    .copied()
                    .collect::<Vec<_>>()
                    .into(),
                decoded: Decoded::Rejected(Rejection::new(RejectCode::BadCsvRow, e.to_string())),
            }];
        }
    };
    let mut starts = Vec::new();
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let before = reader.position().clone();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let position = record.position().unwrap_or(&before);
                starts.push(position.byte() as usize);
                rows.push(Ok(record.clone()));
            }
            Err(e) => {
                let position = e.position().unwrap_or(&before);
                starts.push(position.byte() as usize);
                rows.push(Err(e.to_string()));
                // The reader cannot resume reliably after a fatal error (e.g. I/O); stop here.
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    break;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let (mut counted, mut newlines) = (0, 0);
    for (i, row) in rows.into_iter().enumerate() {
        let start = starts[i];
        let end = starts
            .get(i + 1)
            .map_or(bytes.len(), |s| *s)
            .min(bytes.len());
        // The reader's position is the previous record's line end: skip it (and blank lines).
        let start = (start.min(end)..end)
            .find(|&j| !matches!(bytes[j], b'\r' | b'\n'))
            .unwrap_or(end);
        newlines += bytes[counted..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        counted = start;
        let line = newlines + 1;
        let raw = trim_line_end(&bytes[start..end]).to_vec();
        let decoded = match row {
            Err(message) => Decoded::Rejected(Rejection::new(RejectCode::BadCsvRow, message)),
            Ok(fields) if fields.len() != header.len() => Decoded::Rejected(Rejection::new(
                RejectCode::BadCsvRow,
                format!(
                    "row has {} fields; the header has {}",
                    fields.len(),
                    header.len()
                ),
            )),
            Ok(fields) => match csv_fields(dataset, &header, &fields) {
                Ok(map) => Decoded::Fields(map),
                Err(rejection) => Decoded::Rejected(rejection),
            },
        };
        out.push(RawRecord {
            source_ref: format!("{key}:{line}"),
            bytes: raw.into(),
            decoded,
        });
    }
    out
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn csv_fields(
    dataset: Dataset,
    header: &[String],
    fields: &csv::ByteRecord,
) -> Result<Map<String, Value>, Rejection> {
    let mut map = Map::new();
    for (name, raw) in header.iter().zip(fields.iter()) {
        let text = std::str::from_utf8(raw).map_err(|e| {
            Rejection::new(
                RejectCode::NotUtf8,
                format!("field {name} is not UTF-8: {e}"),
            )
        })?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            match field_kind(dataset, name) {
                FieldKind::Number => match serde_json::from_str::<Value>(text.trim()) {
                    Ok(n @ Value::Number(_)) => n,
                    _ => Value::String(text.to_string()),
                },
                FieldKind::Object => {
                    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
                }
                FieldKind::Text => Value::String(text.to_string()),
            }
        };
        map.insert(name.clone(), value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_are_numbered_and_blank_lines_skipped() {
        let records = decode_jsonl(
            &b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \n{\"b\":2}"[..],
            "landing/x.jsonl",
            1,
        );
        let refs: Vec<_> = records.iter().map(|r| r.source_ref.as_str()).collect();
        assert_eq!(refs, ["landing/x.jsonl:1", "landing/x.jsonl:4"]);
        assert_eq!(&records[0].bytes[..], b"{\"a\":1}");
    }
}
