//! AWS event documents: which event an invocation carries (Kafka batch, S3 notification, S3
//! test event, schedule), the raw records of a Kafka batch, the objects of an S3 notification
//! (keys URL-decoded), and the tables whose metadata a notification announces.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_lambda_events::event::s3::S3Event;
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::domain::time::{format_timestamp, now_micros, parse_timestamp};

use crate::domain::decode::{Decoded, RawRecord};
use crate::domain::rejection::{RejectCode, Rejection};

/// An invocation document of the ingest function.
#[derive(Debug)]
pub enum IngestEvent {
    /// A Kafka batch: its records, values decoded, in (topic, partition, offset) order.
    Kafka(Vec<KafkaMessage>),
    S3(S3Event),
    /// `s3:TestEvent`, sent when a notification is configured: ignored.
    S3Test,
}

/// Tells a Kafka batch from an S3 notification, reading the document's text straight into its
/// event type (a 6 MB Kafka batch never becomes a `serde_json::Value` tree first, and its
/// values are decoded from the text, never copied as base64 strings).
///
/// # Errors
/// A message naming what the document is missing, or why it does not parse.
pub fn parse_ingest_event(json: &str) -> Result<IngestEvent, String> {
    /// The top-level keys that tell the documents apart; everything else is skipped unread.
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "Event")]
        event: Option<Value>,
        #[serde(rename = "Records")]
        s3_records: Option<IgnoredAny>,
        records: Option<IgnoredAny>,
    }
    let shape: Shape = serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))?;
    if shape.event.as_ref().and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(IngestEvent::S3Test);
    }
    if shape.s3_records.is_some() {
        return serde_json::from_str(json)
            .map(IngestEvent::S3)
            .map_err(|e| format!("invalid S3 event: {e}"));
    }
    if shape.records.is_some() {
        return serde_json::from_str::<KafkaBatch>(json)
            .map(|batch| IngestEvent::Kafka(batch.messages()))
            .map_err(|e| format!("invalid Kafka event: {e}"));
    }
    Err(
        "expected a Kafka event (\"records\"), an S3 event (\"Records\") or s3:TestEvent"
            .to_string(),
    )
}

/// A Kafka batch Lambda gave up on, as a Kafka event source mapping's S3 on-failure
/// destination keeps it: its records, and when the mapping gave up.
#[derive(Debug)]
pub struct FailedBatch {
    pub messages: Vec<KafkaMessage>,
    /// UTC microseconds (`timestamp` of the record).
    pub failed_at: i64,
    /// SHA-256 of the record (16 bytes, hex): what a redrive is done once by.
    pub digest: String,
}

/// Reads an on-failure invocation record: metadata, `KafkaBatchInfo`, and the original event
/// in `payload` (an escaped JSON string, as AWS documents it; an object is taken too).
///
/// # Errors
/// A message when the document is not such a record, has no `timestamp`, or holds no batch:
/// SQS and SNS destinations, and batches over the payload limit, keep only offsets, which it
/// names.
pub fn parse_failed_batch(json: &str) -> Result<FailedBatch, String> {
    #[derive(Deserialize)]
    struct Record {
        #[serde(rename = "requestContext")]
        request_context: Option<Value>,
        #[serde(rename = "KafkaBatchInfo")]
        batch_info: Option<Value>,
        timestamp: Option<String>,
        payload: Option<Value>,
    }
    let record: Record =
        serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))?;
    let Some(batch_info) = record.batch_info else {
        return Err("not a Kafka on-failure record: it has no KafkaBatchInfo".to_string());
    };
    let payload = match record.payload {
        Some(Value::String(text)) => text,
        Some(event @ Value::Object(_)) => event.to_string(),
        _ => {
            let condition = record
                .request_context
                .as_ref()
                .and_then(|c| c.get("condition"))
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let offsets = batch_info
                .get("recordsInfo")
                .or_else(|| batch_info.get("recordInfo"))
                .map(Value::to_string)
                .unwrap_or_default();
            return Err(format!(
                "the record holds no batch (condition {condition}): read offsets {offsets} \
                 from Kafka again instead"
            ));
        }
    };
    let Some(failed_at) = record.timestamp.as_deref().and_then(parse_timestamp) else {
        return Err("the record has no RFC 3339 `timestamp` (when Lambda gave up)".to_string());
    };
    match parse_ingest_event(&payload) {
        Ok(IngestEvent::Kafka(messages)) => Ok(FailedBatch {
            messages,
            failed_at,
            digest: hex::encode(&Sha256::digest(json.as_bytes())[..16]),
        }),
        Ok(_) => Err("its payload is not a Kafka event".to_string()),
        Err(e) => Err(format!("its payload: {e}")),
    }
}

/// Parses an S3 notification (for the hops woken by table commits).
///
/// # Errors
/// A message when the document is not an S3 event.
pub fn parse_s3_event(value: Value) -> Result<Option<S3Event>, String> {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("invalid S3 event: {e}"))
}

/// One record of a Kafka batch.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaMessage {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub record: RawRecord,
}

/// A Kafka batch as Lambda delivers it (`aws_lambda_events`' `KafkaEvent`): the fields ingest
/// reads — timestamps, keys and headers are not — with each value borrowed from the
/// document's text until it is decoded.
#[derive(Deserialize)]
struct KafkaBatch<'a> {
    #[serde(borrow)]
    records: Option<HashMap<String, Vec<KafkaRecord<'a>>>>,
}

/// One record of a [`KafkaBatch`].
#[derive(Deserialize)]
struct KafkaRecord<'a> {
    topic: Option<String>,
    partition: i64,
    offset: i64,
    #[serde(borrow)]
    value: Option<Text<'a>>,
}

/// A JSON string, borrowed from the document unless it has escapes. (A newtype: serde's
/// `borrow` does not reach a `Cow` inside an `Option`, serde-rs/serde#2016.)
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl KafkaBatch<'_> {
    /// The records, values base64-decoded. A value that is missing or not base64 becomes a
    /// record already rejected with `bad_encoding`.
    fn messages(self) -> Vec<KafkaMessage> {
        let mut out = Vec::new();
        for (key, records) in self.records.unwrap_or_default() {
            for r in records {
                let topic = r.topic.unwrap_or_else(|| {
                    key.rsplit_once('-')
                        .map_or(key.as_str(), |(topic, _)| topic)
                        .to_string()
                });
                let source_ref = format!("{topic}/{}/{}", r.partition, r.offset);
                let (bytes, decoded) = match r.value {
                    None => (
                        Vec::new(),
                        Decoded::Rejected(Rejection::new(
                            RejectCode::BadEncoding,
                            "record has no value",
                        )),
                    ),
                    Some(Text(b64)) => {
                        match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                            Ok(bytes) => (bytes, Decoded::Json),
                            Err(e) => (
                                b64.into_owned().into_bytes(),
                                Decoded::Rejected(Rejection::new(
                                    RejectCode::BadEncoding,
                                    format!("value is not base64: {e}"),
                                )),
                            ),
                        }
                    }
                };
                out.push(KafkaMessage {
                    topic,
                    partition: r.partition,
                    offset: r.offset,
                    record: RawRecord {
                        source_ref,
                        bytes: bytes.into(),
                        decoded,
                    },
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset))
        });
        out
    }
}

/// An object named by an S3 notification.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key, URL-decoded.
    pub key: String,
}

impl ObjectRef {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The objects of an S3 notification. Keys arrive URL-encoded with `+` for spaces.
pub fn s3_objects(event: &S3Event) -> Vec<ObjectRef> {
    event
        .records
        .iter()
        .filter_map(|r| {
            let key = match (&r.s3.object.url_decoded_key, &r.s3.object.key) {
                (Some(decoded), _) if !decoded.is_empty() => decoded.clone(),
                (_, Some(raw)) => decode_key(raw),
                _ => return None,
            };
            Some(ObjectRef {
                bucket: r.s3.bucket.name.clone().unwrap_or_default(),
                key,
            })
        })
        .collect()
}

/// URL-decodes an S3 event key (`+` is a space).
pub fn decode_key(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes an S3 key as notifications carry it (spaces as `+`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        match byte {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// An S3 ObjectCreated notification for `s3://bucket/key` locations (a `file://` location is
/// announced under the bucket `local`).
pub fn object_created_event(locations: &[String]) -> Value {
    let records: Vec<Value> = locations
        .iter()
        .map(|location| {
            let (bucket, key) = match location.strip_prefix("s3://") {
                Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
                None => ("local", location.trim_start_matches("file://")),
            };
            json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": format_timestamp(now_micros()),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "bakehouse"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "bakehouse",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "bakehouse"},
                        "arn": format!("arn:aws:s3:::{bucket}"),
                    },
                    "object": {"key": encode_key(key)},
                },
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The `namespace.table` names whose metadata files an S3 notification announces
/// (keys like `…/silver/sales/metadata/00003-….metadata.json`).
pub fn changed_tables(event: &S3Event) -> Vec<String> {
    let mut tables: Vec<String> = s3_objects(event)
        .iter()
        .filter_map(|o| {
            let parts: Vec<&str> = o.key.split('/').collect();
            let i = parts.iter().rposition(|p| *p == "metadata")?;
            (i >= 2).then(|| format!("{}.{}", parts[i - 2], parts[i - 1]))
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_batch_is_read_into_decoded_messages_in_offset_order() {
        // "{}" is e30=; {"q":"???"} is eyJxIjoiPz8/In0=, sent with its slash escaped (a value
        // that cannot be borrowed from the text); a missing value and one not base64 are
        // rejected.
        let document = r#"{"eventSource": "SelfManagedKafka", "records": {
            "sales-events-1": [
                {"partition": 1, "offset": 9, "timestamp": 0, "value": "e30="},
                {"partition": 1, "offset": 7, "timestamp": 0, "value": "!!"}
            ],
            "stores-0": [
                {"topic": "stores", "partition": 0, "offset": 3, "headers": [],
                 "value": "eyJxIjoiPz8\/In0="},
                {"topic": "stores", "partition": 0, "offset": 4, "value": null}
            ]}}"#;
        let Ok(IngestEvent::Kafka(messages)) = parse_ingest_event(document) else {
            panic!("not read as a Kafka batch");
        };
        let seen: Vec<(&str, &[u8], Option<RejectCode>)> = messages
            .iter()
            .map(|m| {
                let code = match &m.record.decoded {
                    Decoded::Rejected(r) => Some(r.code),
                    _ => None,
                };
                (m.record.source_ref.as_str(), &m.record.bytes[..], code)
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "sales-events/1/7",
                    &b"!!"[..],
                    Some(RejectCode::BadEncoding)
                ),
                ("sales-events/1/9", &b"{}"[..], None),
                ("stores/0/3", &br#"{"q":"???"}"#[..], None),
                ("stores/0/4", &b""[..], Some(RejectCode::BadEncoding)),
            ]
        );
        let empty = parse_ingest_event(r#"{"records": {}}"#);
        assert!(matches!(empty, Ok(IngestEvent::Kafka(m)) if m.is_empty()));
        let missing_offset = r#"{"records": {"t-0": [{"partition": 0, "value": "e30="}]}}"#;
        assert!(parse_ingest_event(missing_offset).is_err_and(|e| e.contains("offset")));
    }

    #[test]
    fn a_kafka_value_is_borrowed_from_the_text_unless_escaped() {
        let document = r#"{"records": {"t-0": [
            {"partition": 0, "offset": 1, "value": "e30="},
            {"partition": 0, "offset": 2, "value": "eyJxIjoiPz8\/In0="}]}}"#;
        let Ok(KafkaBatch {
            records: Some(mut records),
        }) = serde_json::from_str(document)
        else {
            panic!("not read as a Kafka batch");
        };
        let Some(values) = records.remove("t-0") else {
            panic!("no records under t-0");
        };
        assert!(matches!(
            &values[0].value,
            Some(Text(Cow::Borrowed("e30=")))
        ));
        assert!(matches!(&values[1].value, Some(Text(Cow::Owned(v))) if v == "eyJxIjoiPz8/In0="));
    }

    #[test]
    fn notification_keys_round_trip_through_encoding() {
        for key in [
            "landing/sales-events/day one+two:1.jsonl",
            "a/ü ~%.csv",
            "plain/key.jsonl",
        ] {
            assert_eq!(decode_key(&encode_key(key)), key);
        }
        assert_eq!(encode_key("a b+c"), "a+b%2Bc");
        let event: S3Event = serde_json::from_value(object_created_event(&[
            "s3://lake/landing/x y.csv".to_string(),
            "file:///tmp/w/bronze/t/metadata/1.metadata.json".to_string(),
        ]))
        .unwrap_or_default();
        let objects = s3_objects(&event);
        assert_eq!(
            objects,
            vec![
                ObjectRef {
                    bucket: "lake".into(),
                    key: "landing/x y.csv".into()
                },
                ObjectRef {
                    bucket: "local".into(),
                    key: "/tmp/w/bronze/t/metadata/1.metadata.json".into()
                },
            ]
        );
    }
}
