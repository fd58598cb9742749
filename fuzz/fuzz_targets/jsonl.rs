//! JSON-lines decoding and validation of arbitrary bytes, for every event dataset: every
//! record is either a bronze row or a rejection with a reason; nothing panics.
#![no_main]

use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::records::Lineage;
use bakehouse::domain::decode::decode_jsonl;
use bakehouse::domain::validate::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lineage = Lineage {
        source: "file".into(),
        source_ref: "fuzz".into(),
        ingestion_time: 1_764_064_800_000_000,
    };
    for record in decode_jsonl(data, "landing/fuzz.jsonl", 1) {
        for dataset in Dataset::EVENTS {
            if let Err(rejection) = validate(dataset, &record, &lineage) {
                assert!(!rejection.code.code().is_empty());
            }
        }
    }
});
