//! Lambda invocation documents from arbitrary bytes: event detection, the Kafka records
//! (base64 values) and S3 keys (URL-decoding) never panic.
#![no_main]

use bakehouse::adapters::events::{IngestEvent, kafka_messages, parse_ingest_event, s3_objects};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_ingest_event(text) {
        Ok(IngestEvent::Kafka(event)) => {
            let _ = kafka_messages(&event);
        }
        Ok(IngestEvent::S3(event)) => {
            let _ = s3_objects(&event);
        }
        _ => {}
    }
});
