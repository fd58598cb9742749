//! Pure domain logic: records, validation, quality rules, silver derivations, gold
//! aggregates. Never imports AWS, Lambda, Kafka or Iceberg crates; time is a parameter.

pub mod dataset;
pub mod decode;
pub mod features;
pub mod fields;
pub mod gold;
pub mod money;
pub mod quality;
pub mod records;
pub mod reference;
pub mod rejection;
pub mod reports;
pub mod scd2;
pub mod silver;
pub mod time;
pub mod validate;
pub mod weather;
