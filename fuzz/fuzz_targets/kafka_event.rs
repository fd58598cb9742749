//! Lambda invocation documents from arbitrary bytes: event detection, the Kafka records
//! (base64 values) and S3 keys (URL-decoding) never panic.
#![no_main]

use bakehouse::adapters::events::{IngestEvent, parse_ingest_event, s3_objects};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A Kafka batch's values are decoded while it is parsed.
    if let Ok(IngestEvent::S3(event)) = parse_ingest_event(text) {
        let _ = s3_objects(&event);
    }
});
