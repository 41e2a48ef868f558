//! Process-wide metrics: the counters, gauges and histograms scripts register
//! through `moonport.metrics`, the engine's own per-worker statistics
//! ([`WorkerStats`]), and the Prometheus text exposition of both.
//!
//! Every worker runs the script, so every worker registers the same metrics:
//! registering a name again returns the family already there (it must agree
//! on kind, labels and buckets), and all workers update the same atomic
//! values, which a scrape reads without stopping anyone. Registering and the
//! first use of a label combination take a lock; updates take none. The
//! number of series is capped, so label values taken from traffic cannot
//! grow memory without bound. Knows nothing of Lua.

mod text;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub use worker::{WorkerStats, with_worker};

/// The default cap on series (label combinations, over all metrics).
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Prometheus' default histogram buckets (seconds, for latencies).
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const MAX_BUCKETS: usize = 64;
const MAX_LABELS: usize = 16;
const MAX_NAME: usize = 200;
const MAX_HELP: usize = 1024;
const MAX_LABEL_VALUE: usize = 1024;
/// Names the engine's own metrics use; scripts cannot register them.
pub const RESERVED_PREFIX: &str = "moonport_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Why a registration or a new series was refused; the text is for the
/// script's error message.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricError(pub String);

impl std::fmt::Display for MetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error<T>(msg: impl Into<String>) -> Result<T, MetricError> {
    Err(MetricError(msg.into()))
}

/// What a script asks to register.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub name: String,
    pub help: String,
    pub labels: Vec<String>,
    /// Histograms: upper bounds, strictly increasing (`+Inf` is implied).
    pub buckets: Vec<f64>,
}

/// Every metric of the process.
pub struct Registry {
    families: Mutex<BTreeMap<String, Arc<Family>>>,
    budget: Arc<Budget>,
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    /// The I/O driver the workers run on, once known (`io_uring`, `IOCP`, `poll`).
    driver: OnceLock<&'static str>,
    start: Instant,
}

/// Series in use against the cap, shared by every family.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    fn take(&self) -> Result<(), MetricError> {
        let taken = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < self.max).then_some(n + 1));
        match taken {
            Ok(_) => Ok(()),
            Err(_) => error(format!(
                "too many metric series (the limit is {}, see --metrics-max-series): \
                 are label values taken from unbounded input?",
                self.max
            )),
        }
    }
}

impl Registry {
    pub fn new(max_series: usize) -> Self {
        Self {
            families: Mutex::default(),
            budget: Arc::new(Budget { used: AtomicUsize::new(0), max: max_series }),
            workers: Mutex::default(),
            driver: OnceLock::new(),
            start: Instant::now(),
        }
    }

    /// The family called `spec.name`, created on first registration. A name
    /// already registered must agree on kind, labels and buckets.
    pub fn register(&self, spec: Spec) -> Result<Arc<Family>, MetricError> {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(family) = families.get(&spec.name) {
            let f = &family.spec;
            if f.kind != spec.kind || f.labels != spec.labels || f.buckets != spec.buckets {
                return error(format!(
                    "metric {} is already registered as a {} with labels {{{}}}{}",
                    f.name,
                    f.kind.name(),
                    f.labels.join(", "),
                    if f.kind == Kind::Histogram { " and other buckets" } else { "" }
                ));
            }
            return Ok(family.clone());
        }
        validate(&spec)?;
        // A family is a series of the budget too, so names cannot pile up either.
        self.budget.take()?;
        let family = Arc::new(Family {
            bounds: spec.buckets.clone().into(),
            spec,
            series: Mutex::default(),
            budget: self.budget.clone(),
        });
        // A metric without labels shows (as zero) from the start.
        if family.spec.labels.is_empty() {
            family.series(Vec::new())?;
        }
        families.insert(family.spec.name.clone(), family.clone());
        Ok(family)
    }

    /// Adds a worker's statistics to what a scrape shows.
    pub fn add_worker(&self, stats: Arc<WorkerStats>) {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).push(stats);
    }

    pub fn set_driver(&self, driver: &'static str) {
        let _ = self.driver.set(driver);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        text::builtins(&mut out, &workers, self.driver.get().copied(), self.start.elapsed());
        let families: Vec<Arc<Family>> =
            self.families.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for family in families {
            text::family(&mut out, &family);
        }
        out
    }
}

fn validate(spec: &Spec) -> Result<(), MetricError> {
    let Spec { kind, name, help, labels, buckets } = spec;
    let ident = |s: &str, colon: bool| {
        let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
        s.chars().next().is_some_and(ok_first) && s.chars().all(|c| ok_first(c) || c.is_ascii_digit())
    };
    if name.len() > MAX_NAME || !ident(name, true) {
        return error(format!(
            "invalid metric name {name:?} (letters, digits, '_' and ':', not starting with a digit)"
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return error(format!("metric names starting with {RESERVED_PREFIX:?} are moonport's own"));
    }
    if help.len() > MAX_HELP {
        return error(format!("help text longer than {MAX_HELP} bytes"));
    }
    if labels.len() > MAX_LABELS {
        return error(format!("more than {MAX_LABELS} labels"));
    }
    for (i, label) in labels.iter().enumerate() {
        if label.len() > MAX_NAME || !ident(label, false) || label.starts_with("__") {
            return error(format!("invalid label name {label:?}"));
        }
        if *kind == Kind::Histogram && label == "le" {
            return error("a histogram cannot have a label called \"le\" (its buckets use it)");
        }
        if labels[..i].contains(label) {
            return error(format!("label {label:?} given twice"));
        }
    }
    if *kind == Kind::Histogram {
        if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
            return error(format!("a histogram needs 1 to {MAX_BUCKETS} buckets"));
        }
        if buckets.iter().any(|b| !b.is_finite()) || buckets.windows(2).any(|w| w[0] >= w[1]) {
            return error("buckets must be finite numbers in increasing order");
        }
    }
    Ok(())
}

/// One metric: a name, its kind and labels, and a series per label values.
#[derive(Debug)]
pub struct Family {
    spec: Spec,
    /// Histograms: the buckets' upper bounds, shared with every series.
    bounds: Arc<[f64]>,
    series: Mutex<HashMap<Vec<String>, Arc<Series>>>,
    budget: Arc<Budget>,
}

impl Family {
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The series for these label values (one per label, in order), created
    /// on first use. Callers keep what this returns: it takes a lock.
    pub fn series(&self, values: Vec<String>) -> Result<Arc<Series>, MetricError> {
        let labels = &self.spec.labels;
        if values.len() != labels.len() {
            return error(format!(
                "{} label values expected ({}), got {}",
                labels.len(),
                labels.join(", "),
                values.len()
            ));
        }
        if let Some(long) = values.iter().find(|v| v.len() > MAX_LABEL_VALUE) {
            return error(format!("label value of {} bytes (at most {MAX_LABEL_VALUE})", long.len()));
        }
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = series.get(&values) {
            return Ok(s.clone());
        }
        // The first series of a family without labels is the family's own slot.
        if !(labels.is_empty() && series.is_empty()) {
            self.budget.take()?;
        }
        let buckets = if self.spec.kind == Kind::Histogram { self.bounds.len() } else { 0 };
        let s = Arc::new(Series {
            value: AtomicF64::default(),
            count: AtomicU64::new(0),
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            bounds: self.bounds.clone(),
        });
        series.insert(values, s.clone());
        Ok(s)
    }

    /// The series sorted by label values, for a stable exposition.
    fn snapshot(&self) -> Vec<(Vec<String>, Arc<Series>)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = series.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// One series' values: a counter's or gauge's value, or a histogram's sum,
/// count and per-bucket counts (not cumulative: the exposition adds them up).
#[derive(Debug)]
pub struct Series {
    value: AtomicF64,
    count: AtomicU64,
    buckets: Box<[AtomicU64]>,
    bounds: Arc<[f64]>,
}

impl Series {
    pub fn add(&self, n: f64) {
        self.value.add(n);
    }

    pub fn set(&self, v: f64) {
        self.value.set(v);
    }

    pub fn get(&self) -> f64 {
        self.value.get()
    }

    pub fn observe(&self, v: f64) {
        // Buckets are `le` (less or equal): the first bound >= v; past the last is +Inf.
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.value.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// An f64 in an `AtomicU64`: updates retry a compare-and-swap, which never
/// blocks and rarely repeats.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, n: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + n).to_bits()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: Kind, name: &str, labels: &[&str]) -> Spec {
        Spec {
            kind,
            name: name.into(),
            help: "Help \\ with\nnewline.".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            buckets: if kind == Kind::Histogram { vec![0.25, 1.0] } else { Vec::new() },
        }
    }

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn same_name_same_family_and_mismatches_are_refused() {
        let reg = Registry::new(100);
        let a = reg.register(spec(Kind::Counter, "hits_total", &["code"])).unwrap();
        let b = reg.register(spec(Kind::Counter, "hits_total", &["code"])).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        a.series(values(&["200"])).unwrap().add(2.0);
        b.series(values(&["200"])).unwrap().add(1.5);
        assert_eq!(a.series(values(&["200"])).unwrap().get(), 3.5);
        assert!(reg.register(spec(Kind::Gauge, "hits_total", &["code"])).unwrap_err().0.contains("as a counter"));
        assert!(reg.register(spec(Kind::Counter, "hits_total", &[])).is_err());
        assert!(a.series(values(&[])).unwrap_err().0.contains("1 label values expected (code)"));
    }

    #[test]
    fn names_labels_and_buckets_are_checked() {
        let reg = Registry::new(100);
        for bad in ["", "9lives", "a-b", "moonport_x"] {
            assert!(reg.register(spec(Kind::Gauge, bad, &[])).is_err(), "{bad:?}");
        }
        assert!(reg.register(spec(Kind::Gauge, "ns:ok_1", &[])).is_ok());
        assert!(reg.register(spec(Kind::Gauge, "g", &["a", "a"])).is_err());
        assert!(reg.register(spec(Kind::Gauge, "g", &["__x"])).is_err());
        assert!(reg.register(spec(Kind::Histogram, "h", &["le"])).is_err());
        let mut h = spec(Kind::Histogram, "h", &[]);
        h.buckets = vec![1.0, 1.0];
        assert!(reg.register(h).unwrap_err().0.contains("increasing"));
    }

    #[test]
    fn the_series_cap_holds_over_all_families() {
        let reg = Registry::new(3);
        let plain = reg.register(spec(Kind::Counter, "plain", &[])).unwrap();
        plain.series(Vec::new()).unwrap();
        let labelled = reg.register(spec(Kind::Counter, "labelled", &["k"])).unwrap();
        labelled.series(values(&["a"])).unwrap();
        let err = labelled.series(values(&["b"])).unwrap_err();
        assert!(err.0.contains("too many metric series (the limit is 3"), "{err}");
        // Series already there still work.
        labelled.series(values(&["a"])).unwrap().add(1.0);
        assert!(reg.register(spec(Kind::Counter, "third", &[])).is_err());
    }

    #[test]
    fn exposition_format() {
        let reg = Registry::new(100);
        let c = reg.register(spec(Kind::Counter, "c_total", &["path"])).unwrap();
        c.series(values(&["a\"b\\c\nd"])).unwrap().add(3.0);
        let h = reg.register(spec(Kind::Histogram, "lat", &[])).unwrap();
        let s = h.series(Vec::new()).unwrap();
        for v in [0.125, 0.25, 0.5, 7.0] {
            s.observe(v);
        }
        let g = reg.register(spec(Kind::Gauge, "temp", &[])).unwrap();
        g.series(Vec::new()).unwrap().set(-1.5);
        let text = reg.render();
        let expect = "# HELP c_total Help \\\\ with\\nnewline.\n# TYPE c_total counter\n\
                      c_total{path=\"a\\\"b\\\\c\\nd\"} 3\n";
        assert!(text.contains(expect), "{text}");
        let expect = "# TYPE lat histogram\nlat_bucket{le=\"0.25\"} 2\nlat_bucket{le=\"1\"} 3\n\
                      lat_bucket{le=\"+Inf\"} 4\nlat_sum 7.875\nlat_count 4\n";
        assert!(text.contains(expect), "{text}");
        assert!(text.contains("# TYPE temp gauge\ntemp -1.5\n"), "{text}");
        assert!(text.contains("# TYPE moonport_uptime_seconds gauge\nmoonport_uptime_seconds "), "{text}");
    }
}
