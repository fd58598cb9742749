//! CSV decoding (header, quoting, column counts, typing "as in JSON") and validation of
//! arbitrary bytes, for every dataset: nothing panics.
#![no_main]

use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::records::Lineage;
use bakehouse::domain::decode::decode_csv;
use bakehouse::domain::validate::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lineage = Lineage {
        source: "file".into(),
        source_ref: "fuzz".into(),
        ingestion_time: 1_764_064_800_000_000,
    };
    for dataset in Dataset::ALL {
        for record in decode_csv(data, "landing/fuzz.csv", dataset) {
            let _ = validate(dataset, &record, &lineage);
        }
    }
});
