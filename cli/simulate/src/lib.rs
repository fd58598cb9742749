//! A realistic bakery day of events, with the flaws real feeds have: duplicates, schema-invalid
//! and rule-failing records, late and too-late arrivals. Deterministic for a seed. Used by
//! `bakehouse demo` and `bakehouse produce`; the pipeline itself never calls it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::{
    MICROS_PER_HOUR, MICROS_PER_SECOND, date_from_days, date_of, format_timestamp,
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct DayPlan {
    pub seed: u64,
    /// The time the day ends: on-time events fall in the `window_hours` before it.
    pub end_micros: i64,
    /// 24 for a day (busier in the morning); less for a live stream (evenly spread).
    pub window_hours: f64,
    pub sales: usize,
    pub readings: usize,
    pub inventory: usize,
    /// Fractions of records to flaw, each from 0 to 1.
    pub duplicate: f64,
    pub invalid: f64,
    pub rule_failing: f64,
    pub late: f64,
    pub too_late: f64,
}

impl DayPlan {
    /// About 10,500 events with a few percent of every flaw.
    pub fn demo(seed: u64, end_micros: i64) -> Self {
        DayPlan {
            seed,
            end_micros,
            window_hours: 24.0,
            sales: 7_000,
            readings: 2_500,
            inventory: 1_000,
            duplicate: 0.02,
            invalid: 0.015,
            rule_failing: 0.04,
            late: 0.03,
            too_late: 0.01,
        }
    }
}

/// Generated JSON lines per event dataset, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct GeneratedDay {
    pub sales: Vec<String>,
    pub readings: Vec<String>,
    pub inventory: Vec<String>,
    /// One pull of the weather of each store over the day and the four before it.
    pub weather: Vec<String>,
}

impl GeneratedDay {
    /// The lines of one dataset.
    pub fn lines(&self, dataset: Dataset) -> &[String] {
        match dataset {
            Dataset::SalesEvents => &self.sales,
            Dataset::EquipmentMetrics => &self.readings,
            Dataset::InventoryUpdates => &self.inventory,
            Dataset::Weather => &self.weather,
            _ => &[],
        }
    }
}

const STORES: i64 = 5;
const PRODUCTS: i64 = 10;
const PRICES: [f64; 10] = [3.50, 7.25, 4.00, 4.25, 4.75, 3.25, 6.50, 2.25, 5.50, 2.95];
const EQUIPMENT: [(i64, &str); 7] = [
    (1, "oven"),
    (2, "proofer"),
    (3, "mixer"),
    (4, "oven"),
    (5, "refrigerator"),
    (6, "display_case"),
    (7, "oven"),
];

struct Generator {
    rng: StdRng,
    plan: DayPlan,
}

/// Generates a day.
pub fn generate_day(plan: &DayPlan) -> GeneratedDay {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(plan.seed),
        plan: plan.clone(),
    };
    GeneratedDay {
        sales: (0..plan.sales).flat_map(|i| g.sale(i)).collect(),
        readings: (0..plan.readings).flat_map(|i| g.reading(i)).collect(),
        inventory: (0..plan.inventory).flat_map(|i| g.inventory(i)).collect(),
        weather: (1..=STORES).flat_map(|store| g.weather(store)).collect(),
    }
}

impl Generator {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// An event time: mostly within the day (busier in the morning), sometimes late or too late.
    fn event_time(&mut self) -> i64 {
        let end = self.plan.end_micros;
        if self.chance(self.plan.too_late) {
            return end
                - self
                    .rng
                    .random_range(50 * MICROS_PER_HOUR..96 * MICROS_PER_HOUR);
        }
        if self.chance(self.plan.late) {
            return end
                - self
                    .rng
                    .random_range(25 * MICROS_PER_HOUR..47 * MICROS_PER_HOUR);
        }
        let hours_ago = if self.plan.window_hours < 24.0 {
            self.rng.random_range(0.0..self.plan.window_hours.max(1e-6))
        } else if self.chance(0.4) {
            self.rng.random_range(14.0..20.0)
        } else {
            self.rng.random_range(0.05..24.0)
        };
        end - (hours_ago * MICROS_PER_HOUR as f64) as i64
    }

    fn ts(micros: i64) -> Value {
        Value::String(format_timestamp(micros - micros % MICROS_PER_SECOND))
    }

    /// Emits the record (and a duplicate of it, sometimes), or a schema-invalid variant.
    fn emit(&mut self, mut record: Value, id_field: &str) -> Vec<String> {
        if self.chance(self.plan.invalid) {
            let broken = match self.rng.random_range(0..6) {
                0 => return vec![format!("{{\"{id_field}\": \"broken")],
                1 => {
                    record.as_object_mut().map(|o| o.remove("event_time"));
                    record
                }
                2 => {
                    record["event_time"] = json!("yesterday at noon");
                    record
                }
                3 => {
                    record[id_field] = json!("x".repeat(80));
                    record
                }
                4 => {
                    record["store_id"] = json!("three");
                    record["equipment_id"] = json!("seven");
                    record
                }
                _ => json!([record]),
            };
            return vec![broken.to_string()];
        }
        let line = record.to_string();
        if self.chance(self.plan.duplicate) {
            vec![line.clone(), line]
        } else {
            vec![line]
        }
    }

    fn sale(&mut self, i: usize) -> Vec<String> {
        let product = self.rng.random_range(1..=PRODUCTS);
        let mut store = self.rng.random_range(1..=STORES);
        let mut quantity = self.rng.random_range(1..=6);
        let mut price = PRICES[(product - 1) as usize];
        let mut event_time = self.event_time();
        if self.chance(self.plan.rule_failing) {
            match self.rng.random_range(0..5) {
                0 => store = 99,
                1 => quantity = 500,
                2 => price = 0.0,
                3 => event_time = self.plan.end_micros + 2 * MICROS_PER_HOUR,
                // Poor: unknown store and product, zero quantity (score 35, kept out of gold).
                _ => (store, quantity) = (99, 0),
            }
        }
        let product = if store == 99 && quantity == 0 {
            99
        } else {
            product
        };
        // A transaction's channel: six in ten in store, three online, one in the app; an
        // online or app order always has its customer.
        let transaction = i / 3;
        let channel = match transaction % 10 {
            0..=5 => "in_store",
            6..=8 => "online",
            _ => "app",
        };
        let customer = if self.chance(0.6) {
            json!(format!("C{:04}", self.rng.random_range(1..=8)))
        } else if channel == "in_store" {
            Value::Null
        } else {
            json!(format!("C{:04}", transaction % 8 + 1))
        };
        let record = json!({
            "event_id": format!("S{}-{i:07}", self.plan.seed),
            "transaction_id": format!("T{}-{:06}", self.plan.seed, i / 3),
            "event_time": Self::ts(event_time),
            "store_id": store,
            "product_id": product,
            "customer_id": customer,
            "quantity": quantity,
            "unit_price": price,
            "promotion_id": if self.chance(0.1) { json!("SPRING10") } else { Value::Null },
            "channel": channel,
        });
        self.emit(record, "event_id")
    }

    fn reading(&mut self, i: usize) -> Vec<String> {
        let (equipment_id, kind) = EQUIPMENT[self.rng.random_range(0..EQUIPMENT.len())];
        let status = match self.rng.random_range(0..100) {
            0..=69 => "running",
            70..=84 => "idle",
            85..=89 => "starting",
            90..=93 => "stopping",
            94..=97 => "maintenance",
            _ => "error",
        };
        let (lo, hi) = match kind {
            "oven" => (160.0, 240.0),
            "proofer" => (28.0, 38.0),
            "mixer" => (18.0, 30.0),
            "refrigerator" => (1.0, 5.0),
            _ => (4.0, 10.0),
        };
        let mut temperature = self.rng.random_range(lo..hi);
        let mut power = if status == "running" {
            self.rng.random_range(2.0..12.0)
        } else {
            self.rng.random_range(0.0..1.0)
        };
        let mut equipment = equipment_id;
        if self.chance(self.plan.rule_failing) {
            match self.rng.random_range(0..4) {
                0 => temperature = 400.0,
                1 => power = 150.0,
                2 => equipment = 42,
                // Poor: unknown equipment drawing impossible power (score 50, still in gold).
                _ => (equipment, power) = (42, 150.0),
            }
        }
        let record = json!({
            "metric_id": format!("M{}-{i:07}", self.plan.seed),
            "equipment_id": equipment,
            "event_time": Self::ts(self.event_time()),
            "operational_status": status,
            "power_kw": (power * 100.0_f64).round() / 100.0,
            "temperature_c": if self.chance(0.9) { json!((temperature * 10.0_f64).round() / 10.0) } else { Value::Null },
            "interval_seconds": 60,
            "readings": {"humidity_pct": self.rng.random_range(30..70)},
        });
        self.emit(record, "metric_id")
    }

    /// A pull at the day's end of one store's weather on the day and the four before it.
    fn weather(&mut self, store: i64) -> Vec<String> {
        let end = self.plan.end_micros;
        let today = date_of(end);
        (today - 4..=today)
            .map(|day| {
                let max = self.rng.random_range(4.0..24.0f64);
                let min = max - self.rng.random_range(3.0..10.0f64);
                let rain = if self.chance(0.4) {
                    self.rng.random_range(0.2..12.0f64)
                } else {
                    0.0
                };
                json!({
                    "store_id": store,
                    "date": date_from_days(day).to_string(),
                    "pulled_at": format_timestamp(end),
                    "temperature_max_c": (max * 10.0).round() / 10.0,
                    "temperature_min_c": (min * 10.0).round() / 10.0,
                    "precipitation_mm": (rain * 10.0).round() / 10.0,
                    "weather_code": if rain > 0.0 { 61 } else { 2 },
                })
                .to_string()
            })
            .collect()
    }

    fn inventory(&mut self, i: usize) -> Vec<String> {
        let beginning = self.rng.random_range(20..120);
        let restocked = self.rng.random_range(0..60);
        let mut sold = self.rng.random_range(0..(beginning + restocked));
        let waste = self
            .rng
            .random_range(0..=((beginning + restocked - sold) / 4));
        let (mut store, mut product) = (
            self.rng.random_range(1..=STORES),
            self.rng.random_range(1..=PRODUCTS),
        );
        if self.chance(self.plan.rule_failing) {
            sold = beginning + restocked + 10;
            if self.chance(0.3) {
                // Poor: unknown store and product, sold beyond any stock (score 45).
                (store, product, sold) = (99, 99, 20_000);
            }
        }
        let record = json!({
            "update_id": format!("U{}-{i:07}", self.plan.seed),
            "event_time": Self::ts(self.event_time()),
            "store_id": store,
            "product_id": product,
            "beginning_stock": beginning,
            "restocked_quantity": restocked,
            "sold_quantity": sold,
            "waste_quantity": waste,
            "reported_by": "shift-lead",
        });
        self.emit(record, "update_id")
    }
}
