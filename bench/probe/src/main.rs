//! The probes of the event→gold latency benchmark: valid sales events of the default reference
//! data sent to Kafka at a steady pace, each with a known id (`PREFIX-000042`) and an
//! `event_time` stamped as it is sent, so the moment a probe is visible in `gold.fact_sales`
//! minus its `event_time` is its latency. Keyed by `store_id`, as SPEC §2 keys the topic.
//! Depends on no crate of the lakehouse: it is the outside world.
//!
//! `bench-probe BOOTSTRAP TOPIC PREFIX COUNT RATE` (RATE in events per second); prints the
//! number of probes delivered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Unit prices of products 1–10 in the default reference data, in cents.
const PRICES_CENTS: [u32; 10] = [350, 725, 400, 425, 475, 325, 650, 225, 550, 295];

/// Counts the deliveries the broker did not acknowledge.
#[derive(Default)]
struct Deliveries {
    failed: AtomicUsize,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, prefix, count, rate] = args.as_slice() else {
        return Err("usage: bench-probe BOOTSTRAP TOPIC PREFIX COUNT RATE".into());
    };
    let count: usize = count.parse()?;
    let rate: f64 = rate.parse()?;
    if !(rate > 0.0 && rate.is_finite()) {
        return Err("RATE: a positive number of events per second".into());
    }
    // Sent at once (no linger): the latency measured is the pipeline's, not the producer's.
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create_with_context(Deliveries::default())?;
    let started = Instant::now();
    for i in 0..count {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let store = 1 + i % 5;
        let product = 1 + i % 10;
        let price = PRICES_CENTS[product - 1];
        let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let line = format!(
            r#"{{"event_id":"{prefix}-{i:06}","transaction_id":"{prefix}-t{i:06}","event_time":"{at}","store_id":{store},"product_id":{product},"customer_id":null,"quantity":1,"unit_price":{}.{:02},"promotion_id":null}}"#,
            price / 100,
            price % 100
        );
        let key = store.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&line))
            .map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} of {count} probes were not delivered").into());
    }
    println!("{count}");
    Ok(())
}
