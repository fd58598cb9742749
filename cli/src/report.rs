//! `bakehouse report --out report.html`: one self-contained HTML page (inline SVG and CSS, no
//! script, nothing fetched) with the charts an operator looks at — daily revenue per store, top
//! products, quality score per dataset over time, the late-arrival histogram and equipment
//! efficiency — over the latest business dates. Every mark carries its exact figure in
//! `data-label`/`data-value` (and a tooltip), and each chart has its numbers in a table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bakehouse::adapters::lakehouse::{Lakehouse, tables};
use bakehouse::domain::records::{
    DataQualityDaily, DimProduct, FactEquipmentPerformance, FactSalesDaily,
};
use bakehouse::domain::time::{date_from_days, format_timestamp, now_micros};
use bakehouse::hops::Deps;
use clap::Args;
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The HTML file to write
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// How many of the latest business dates (with sales) the report covers
    #[arg(long, default_value_t = 14)]
    pub days: usize,
}

/// The lateness buckets of the histogram: upper bound in hours, label. A row past the allowed
/// lateness (`BAKEHOUSE_ALLOWED_LATENESS_HOURS`) is in the last, whatever its hours.
pub const LATENESS_BUCKETS: [(f64, &str); 5] = [
    (1.0, "≤ 1 h"),
    (6.0, "1–6 h"),
    (24.0, "6–24 h"),
    (f64::INFINITY, "> 24 h, allowed"),
    (f64::INFINITY, "too late"),
];

/// What the histogram needs of a silver row.
#[derive(Deserialize)]
struct Lateness {
    business_date: i32,
    lateness_seconds: f64,
    /// Past the allowed lateness (its own bucket, whatever the setting).
    too_late: bool,
}

/// A chart's series: its name and its (label, value) points.
type Series = (String, Vec<(String, f64)>);

/// Writes the report.
pub async fn run(deps: &Deps, args: &ReportArgs) -> Result<()> {
    let html = render(deps, args.days).await?;
    std::fs::write(&args.out, html)
        .with_context(|| format!("cannot write --out {}", args.out.display()))?;
    say!("Report written to {}", args.out.display());
    Ok(())
}

/// The report's HTML over the latest `days` business dates with sales.
pub async fn render(deps: &Deps, days: usize) -> Result<String> {
    let lake = &deps.lake;
    let daily: Vec<FactSalesDaily> = lake.read_table(&tables::FACT_SALES_DAILY).await?;
    let quality: Vec<DataQualityDaily> = lake.read_table(&tables::DATA_QUALITY_DAILY).await?;
    // The latest dates with silver rows (the quality report has every one, also a date whose
    // rows were all too late for gold), as `status` takes them.
    let window: BTreeSet<i32> = daily
        .iter()
        .map(|d| d.business_date)
        .chain(quality.iter().map(|q| q.business_date))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .rev()
        .take(days)
        .collect();
    let in_window = |date: i32| window.contains(&date);
    let day = |date: i32| date_from_days(date).to_string();

    let (revenue_series, by_product) = revenue(&daily, &window);
    let top = top_products(lake, by_product).await?;

    // Quality score per dataset over time.
    let mut per_dataset: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for q in quality.iter().filter(|q| in_window(q.business_date)) {
        if let Some(score) = q.avg_quality_score {
            per_dataset
                .entry(q.dataset.clone())
                .or_default()
                .push((day(q.business_date), round1(score)));
        }
    }
    let quality_series: Vec<Series> = per_dataset.into_iter().collect();

    let late = lateness_histogram(lake, &in_window).await?;
    let efficiency = equipment_efficiency(lake, &in_window).await?;

    let span = match (window.first(), window.last()) {
        (Some(first), Some(last)) => format!("{} to {}", day(*first), day(*last)),
        _ => "no sales yet".to_string(),
    };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Bakehouse daily report</title><style>{STYLE}</style></head><body>\
         <h1>Bakehouse daily report</h1><p class=\"meta\">Business dates {span} · \
         generated {}</p>",
        format_timestamp(now_micros())
    );
    page.push_str(&line_chart(
        "daily-revenue",
        "Daily revenue per store",
        "revenue",
        &revenue_series,
    ));
    page.push_str(&bar_chart(
        "top-products",
        "Top products by revenue",
        "revenue",
        &top,
    ));
    page.push_str(&line_chart(
        "quality-score",
        "Average quality score per dataset",
        "score",
        &quality_series,
    ));
    page.push_str(&bar_chart(
        "late-arrivals",
        "Late arrivals: silver records by lateness",
        "records",
        &late,
    ));
    page.push_str(&bar_chart(
        "equipment-efficiency",
        "Equipment efficiency (% of operational vs downtime hours)",
        "efficiency %",
        &efficiency,
    ));
    page.push_str("</body></html>\n");
    Ok(page)
}

/// Daily revenue per store over `window` (a point for every date), and each product's revenue
/// in cents (added exactly).
fn revenue(daily: &[FactSalesDaily], window: &BTreeSet<i32>) -> (Vec<Series>, BTreeMap<i32, i64>) {
    let mut per_store: BTreeMap<i32, BTreeMap<i32, i64>> = BTreeMap::new();
    let mut by_product: BTreeMap<i32, i64> = BTreeMap::new();
    for d in daily.iter().filter(|d| window.contains(&d.business_date)) {
        *per_store
            .entry(d.store_id)
            .or_default()
            .entry(d.business_date)
            .or_default() += d.revenue.0;
        *by_product.entry(d.product_id).or_default() += d.revenue.0;
    }
    let series = per_store
        .iter()
        .map(|(store, per_day)| {
            let points = window
                .iter()
                .map(|date| {
                    let total = per_day.get(date).copied().unwrap_or(0);
                    (date_from_days(*date).to_string(), cents(total))
                })
                .collect();
            (format!("store {store}"), points)
        })
        .collect();
    (series, by_product)
}

/// The ten products of most revenue in `by_product` (cents), named from the current product
/// dimension.
async fn top_products(
    lake: &Lakehouse,
    by_product: BTreeMap<i32, i64>,
) -> Result<Vec<(String, f64)>> {
    let names: BTreeMap<i32, String> = lake
        .read_table::<DimProduct>(&tables::DIM_PRODUCT)
        .await?
        .into_iter()
        .filter(|p| p.is_current)
        .filter_map(|p| p.name.map(|n| (p.product_id, n)))
        .collect();
    let mut top: Vec<(i32, i64)> = by_product.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(top
        .into_iter()
        .take(10)
        .map(|(id, total)| {
            let name = names.get(&id).map_or(String::new(), |n| format!(" {n}"));
            (format!("#{id}{name}"), cents(total))
        })
        .collect())
}

/// Silver records of the window's dates by lateness bucket (too late last).
async fn lateness_histogram(
    lake: &Lakehouse,
    in_window: &impl Fn(i32) -> bool,
) -> Result<Vec<(String, f64)>> {
    let mut histogram = [0u64; LATENESS_BUCKETS.len()];
    for def in [
        tables::SILVER_SALES,
        tables::SILVER_EQUIPMENT_METRICS,
        tables::SILVER_INVENTORY,
    ] {
        for row in lake.read_table::<Lateness>(&def).await? {
            if in_window(row.business_date) {
                let hours = row.lateness_seconds / 3600.0;
                let too_late = LATENESS_BUCKETS.len() - 1;
                let bucket = if row.too_late {
                    too_late
                } else {
                    LATENESS_BUCKETS[..too_late]
                        .iter()
                        .position(|(upper, _)| hours <= *upper)
                        .unwrap_or(too_late - 1)
                };
                histogram[bucket] += 1;
            }
        }
    }
    Ok(LATENESS_BUCKETS
        .iter()
        .zip(histogram)
        .map(|((_, label), n)| ((*label).to_string(), n as f64))
        .collect())
}

/// Each piece of equipment's efficiency over the window: 100 × operational / (operational +
/// downtime) hours.
async fn equipment_efficiency(
    lake: &Lakehouse,
    in_window: &impl Fn(i32) -> bool,
) -> Result<Vec<(String, f64)>> {
    let performance: Vec<FactEquipmentPerformance> =
        lake.read_table(&tables::FACT_EQUIPMENT_PERFORMANCE).await?;
    let mut hours: BTreeMap<i32, (f64, f64)> = BTreeMap::new();
    for p in performance.iter().filter(|p| in_window(p.business_date)) {
        let entry = hours.entry(p.equipment_id).or_default();
        entry.0 += p.operational_hours;
        entry.1 += p.downtime_minutes / 60.0;
    }
    Ok(hours
        .into_iter()
        .filter(|(_, (up, down))| up + down > 0.0)
        .map(|(id, (up, down))| (format!("equipment {id}"), round1(100.0 * up / (up + down))))
        .collect())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:980px}\
figure{margin:2em 0}figcaption{font-weight:600;margin-bottom:.5em}\
svg{background:#fafafa;border:1px solid #ddd}.axis{stroke:#999}\
text{font-size:11px;fill:#444}table{border-collapse:collapse;margin-top:.5em;font-size:12px}\
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}.meta{color:#666}\
.empty{color:#999;font-style:italic}";

const PALETTE: [&str; 8] = [
    "#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#f1c40f",
];

fn cents(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn empty(id: &str, title: &str) -> String {
    format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <p class=\"empty\">No data yet.</p></figure>",
        escape(title)
    )
}

/// A horizontal bar chart, one bar per item, and its table.
fn bar_chart(id: &str, title: &str, unit: &str, items: &[(String, f64)]) -> String {
    if items.is_empty() {
        return empty(id, title);
    }
    let (row, label_width, width) = (22.0, 190.0, 760.0);
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let height = row * items.len() as f64 + 10.0;
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (width - label_width - 80.0) * value / max;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect class=\"mark\" x=\"{label_width}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" \
             fill=\"{}\" data-label=\"{}\" data-value=\"{value}\"><title>{}: {value}</title></rect>\
             <text x=\"{:.1}\" y=\"{}\">{value}</text>",
            label_width - 6.0,
            y + 14.0,
            escape(label),
            row - 6.0,
            PALETTE[0],
            escape(label),
            escape(label),
            label_width + w + 4.0,
            y + 14.0
        );
    }
    svg.push_str("</svg>");
    svg.push_str(&table(
        &[unit.to_string()],
        items.iter().map(|(l, v)| (l.clone(), vec![*v])),
    ));
    svg.push_str("</figure>");
    svg
}

/// A line chart of series over shared x labels (in order of first appearance), and its table.
fn line_chart(id: &str, title: &str, unit: &str, series: &[Series]) -> String {
    let mut xs: Vec<String> = Vec::new();
    for (_, points) in series {
        for (x, _) in points {
            if !xs.contains(x) {
                xs.push(x.clone());
            }
        }
    }
    xs.sort();
    if xs.is_empty() {
        return empty(id, title);
    }
    let (width, height, left, bottom, top) = (760.0, 300.0, 60.0, 40.0, 10.0);
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v));
    let max = values.fold(0.0, f64::max).max(1e-9);
    let x_of = |x: &str| {
        let i = xs.iter().position(|s| s == x).unwrap_or(0) as f64;
        let step = (width - left - 70.0) / (xs.len().max(2) - 1) as f64;
        left + 30.0 + i * step
    };
    let y_of = |v: f64| top + (height - top - bottom) * (1.0 - v / max);
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{left}\" y1=\"{}\" x2=\"{width}\" y2=\"{}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        escape(title),
        escape(title),
        height - bottom,
        height - bottom,
        height - bottom,
        left - 4.0,
        top + 10.0,
        round1(max),
        left - 4.0,
        height - bottom
    );
    for x in &xs {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x_of(x),
            height - bottom + 16.0,
            escape(x)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, v)| format!("{:.1},{:.1}", x_of(x), y_of(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\" \
             data-series=\"{}\"/>",
            path.join(" "),
            escape(name)
        );
        for (x, v) in points {
            let _ = write!(
                svg,
                "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\" \
                 data-series=\"{}\" data-label=\"{}\" data-value=\"{v}\">\
                 <title>{} {}: {v}</title></circle>",
                x_of(x),
                y_of(*v),
                escape(name),
                escape(x),
                escape(name),
                escape(x)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            left + 10.0 + 120.0 * i as f64,
            height - 6.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg.push_str(&series_table(series, &xs, unit));
    svg.push_str("</figure>");
    svg
}

/// The values of a line chart as a table: a row per x label, a column per series.
fn series_table(series: &[Series], xs: &[String], unit: &str) -> String {
    let names: Vec<String> = series
        .iter()
        .map(|(n, _)| format!("{n} ({unit})"))
        .collect();
    let rows = xs.iter().map(|x| {
        let cells = series
            .iter()
            .map(|(_, p)| {
                p.iter()
                    .find(|(px, _)| px == x)
                    .map_or(f64::NAN, |(_, v)| *v)
            })
            .collect();
        (x.clone(), cells)
    });
    table(&names, rows)
}

fn table(columns: &[String], rows: impl Iterator<Item = (String, Vec<f64>)>) -> String {
    let mut html = String::from("<table><tr><th></th>");
    for c in columns {
        let _ = write!(html, "<th>{}</th>", escape(c));
    }
    html.push_str("</tr>");
    for (label, cells) in rows {
        let _ = write!(html, "<tr><th>{}</th>", escape(&label));
        for v in cells {
            if v.is_nan() {
                html.push_str("<td>–</td>");
            } else {
                let _ = write!(html, "<td>{v}</td>");
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_figures_and_labels_are_escaped() {
        let svg = bar_chart("x", "T", "n", &[("<a&b>".into(), 2.5), ("c".into(), 5.0)]);
        assert!(svg.contains("data-label=\"&lt;a&amp;b&gt;\" data-value=\"2.5\""));
        assert_eq!(svg.matches("class=\"mark\"").count(), 2);
        assert!(!svg.contains("<a&b>"));
    }

    #[test]
    fn a_chart_without_data_says_so() {
        assert!(line_chart("q", "Q", "score", &[]).contains("No data yet."));
    }
}
