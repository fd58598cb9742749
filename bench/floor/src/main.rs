//! The floor of the ingest benchmark: arrow-json decoding of sales events and Parquet encoding
//! of the result — no validation, no payload or lineage, no commit. `bench-floor IN.jsonl OUT`.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        return Err("usage: bench-floor IN.jsonl OUT.parquet".into());
    };
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    let schema = Arc::new(Schema::new(vec![
        text("event_id"),
        text("transaction_id"),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        int("store_id"),
        int("product_id"),
        text("customer_id"),
        int("quantity"),
        Field::new("unit_price", DataType::Decimal128(10, 2), true),
        text("promotion_id"),
    ]));
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(BufReader::with_capacity(1 << 20, File::open(input)?))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(File::create(output)?, schema, Some(properties))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    println!("{rows}");
    Ok(())
}
