//! Results: a latency histogram summary, the one-line text and the JSON form.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    fn text(&self) -> String {
        format!(
            "p50 {} p99 {} p99.9 {} max {}",
            micros(self.p50),
            micros(self.p99),
            micros(self.p999),
            micros(self.max)
        )
    }

    fn json(&self) -> Value {
        json!({ "p50_us": self.p50, "p99_us": self.p99, "p999_us": self.p999, "max_us": self.max })
    }
}

fn micros(us: u64) -> String {
    if us >= 10_000 { format!("{:.1}ms", us as f64 / 1000.0) } else { format!("{us}µs") }
}

/// A new histogram for 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What a workload measured.
#[derive(Debug)]
pub struct Outcome {
    pub workload: &'static str,
    /// What the rate counts ("deliveries", "appends", ...).
    pub unit: &'static str,
    pub count: u64,
    pub seconds: f64,
    pub latency: Option<Latency>,
    /// Workload parameters and extra figures, for the record.
    pub details: Value,
}

impl Outcome {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.seconds.max(1e-9)
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}: {:.0} {}/s ({} in {:.2}s)",
            self.workload,
            self.rate(),
            self.unit,
            self.count,
            self.seconds
        );
        if let Some(l) = &self.latency {
            line.push_str(&format!(", latency {}", l.text()));
        }
        if let Value::Object(map) = &self.details {
            for (k, v) in map {
                line.push_str(&format!(", {k}={v}"));
            }
        }
        line
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "workload": self.workload,
            "unit": self.unit,
            "count": self.count,
            "seconds": self.seconds,
            "rate_per_sec": self.rate(),
            "latency": self.latency.map(|l| l.json()),
            "details": self.details,
        })
    }
}

/// The one-line comparison of the hub against another system on the same workload.
pub fn ratio(hub: &Outcome, other: &Outcome) -> String {
    let mut line = format!(
        "{}: hub/nats throughput ratio {:.2}",
        hub.workload,
        hub.rate() / other.rate().max(1e-9)
    );
    if let (Some(a), Some(b)) = (&hub.latency, &other.latency) {
        line.push_str(&format!(", p99 hub {}µs vs nats {}µs", a.p99, b.p99));
    }
    if let Some(caveat) = other.details.get("caveat").and_then(Value::as_str) {
        line.push_str(&format!(" ({caveat})"));
    }
    line
}
