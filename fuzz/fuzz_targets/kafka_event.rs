//! Lambda invocation documents from arbitrary bytes: event detection, the Kafka records
//! (base64 values) and S3 keys (URL-decoding) never panic.
#![no_main]

use bakehouse::adapters::events::{IngestEvent, kafka_messages, parse_ingest_event, s3_objects};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match parse_ingest_event(value) {
        Ok(IngestEvent::Kafka(event)) => {
            let _ = kafka_messages(&event);
        }
        Ok(IngestEvent::S3(event)) => {
            let _ = s3_objects(&event);
        }
        _ => {}
    }
});
