//! Lambda entry point: wiring only (and the invocation's EMF metric lines); the handler is in
//! `lib.rs`, the hop in `bakehouse::hops`.

use bakehouse::config::{Config, Overrides};
use bakehouse::hops::Deps;
use bakehouse::metrics;
use lambda_runtime::{Error, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env(&Overrides::default())?;
    let deps = Deps::open(config).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event| async move {
        metrics::measured("fetch-weather", fetch_weather::handler(deps, event)).await
    }))
    .await
}
