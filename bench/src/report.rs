//! Results: a latency histogram summary, the one-line text and the JSON form.

use std::sync::{Arc, Mutex};

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

/// Values a [`Recorder`] holds before it adds them to the shared histogram.
const BULK: usize = 256;

/// The latencies of many tasks, in one histogram of microseconds.
///
/// Each task records through its own [`Recorder`], which adds its values in bulk. A histogram
/// per task (hundreds of them, some 130 KB each) made nearly every record a cache miss, which
/// cost the load generator more than the rest of a subscriber's work per message; one shared
/// histogram stays in cache. The result is the same histogram.
#[derive(Clone)]
pub struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl Latencies {
    pub fn new() -> Self {
        Latencies(Arc::new(Mutex::new(histogram())))
    }

    /// A recorder for one task. Its values count once it is dropped (or has recorded enough).
    pub fn recorder(&self) -> Recorder {
        Recorder { values: Vec::with_capacity(BULK), into: Arc::clone(&self.0) }
    }

    /// The percentiles of everything recorded by recorders dropped so far.
    pub fn summary(&self) -> Latency {
        Latency::of(&self.0.lock().expect("latency histogram"))
    }
}

/// One task's way into [`Latencies`].
pub struct Recorder {
    values: Vec<u64>,
    into: Arc<Mutex<Histogram<u64>>>,
}

impl Recorder {
    /// Records a latency in microseconds.
    pub fn record(&mut self, us: u64) {
        self.values.push(us);
        if self.values.len() == BULK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut histogram = self.into.lock().expect("latency histogram");
        for us in self.values.drain(..) {
            // As before: a value out of the histogram's range is not counted.
            histogram.record(us).ok();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
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

/// The CPU a server used between two readings, in seconds.
pub fn cpu_used(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    // Readings are whole hundredths: keep the difference one too.
    Some(((after? - before?) * 100.0).round() / 100.0)
}

/// Operations per second of the server's CPU time, when it was measured.
fn per_server_cpu_second(o: &Outcome) -> Option<f64> {
    let cpu = o.details.get("server_cpu_seconds")?.as_f64()?;
    (cpu > 0.0).then(|| o.count as f64 / cpu)
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
    // Both servers share the machine with the load generator: what each does per second of
    // its own CPU says more about the server than the rate the generator could drive.
    if let (Some(a), Some(b)) = (per_server_cpu_second(hub), per_server_cpu_second(other)) {
        line.push_str(&format!(
            ", per server CPU second hub {a:.0} vs nats {b:.0} {} (ratio {:.2})",
            hub.unit,
            a / b
        ));
    }
    if let Some(caveat) = other.details.get("caveat").and_then(Value::as_str) {
        line.push_str(&format!(" ({caveat})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(count: u64, cpu: Option<f64>) -> Outcome {
        Outcome {
            workload: "fanout",
            unit: "deliveries",
            count,
            seconds: 2.0,
            latency: None,
            details: json!({ "server_cpu_seconds": cpu }),
        }
    }

    #[test]
    fn ratio_should_compare_rates_and_work_per_server_cpu_second() {
        let line = ratio(&outcome(3_000, Some(1.0)), &outcome(4_000, Some(2.0)));
        assert!(line.contains("throughput ratio 0.75"), "{line}");
        assert!(
            line.contains("per server CPU second hub 3000 vs nats 2000 deliveries (ratio 1.50)"),
            "{line}"
        );
        let without = ratio(&outcome(3_000, None), &outcome(4_000, Some(2.0)));
        assert!(!without.contains("CPU"), "{without}");
    }

    #[test]
    fn a_process_cpu_time_should_be_read_and_grow() {
        let pid = std::process::id();
        let before = crate::hub::cpu_seconds_of(pid).expect("own /proc stat");
        // Busy until the kernel has counted a tick more (or give up after 10 s).
        let spin = std::time::Instant::now();
        let mut after = before;
        while after <= before && spin.elapsed() < std::time::Duration::from_secs(10) {
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = x.wrapping_add(std::hint::black_box(i));
            }
            std::hint::black_box(x);
            after = crate::hub::cpu_seconds_of(pid).unwrap();
        }
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_used(Some(1.25), Some(10.26)), Some(9.01));
        assert_eq!(cpu_used(None, Some(after)), None);
    }
}
