//! What the load generators' runs and reports have in common: the run-length
//! and output options, error counters and samples, latency percentiles, and
//! printing the result (one JSON line or the text report) with its exit
//! code (2 when the run recorded errors).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;

/// How many error messages a run keeps to show the user.
const MAX_SAMPLES: usize = 5;

/// Options of every timed load generator, flattened into its arguments.
#[derive(Args, Debug, Clone, Copy)]
pub struct RunArgs {
    /// Measurement duration in seconds (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up in seconds: traffic flows but is not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Load-generator threads, each with its own compio runtime (default:
    /// number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line with the results instead of the text report.
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    /// The checked warm-up and measured duration.
    pub(crate) fn times(&self) -> Result<(Duration, Duration), String> {
        Ok((
            crate::echo::seconds("--warmup", self.warmup, true)?,
            crate::echo::seconds("--duration", self.duration, false)?,
        ))
    }

    /// Whether the report is to be one JSON line.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// `--threads` (or one per core), at least 1 and at most `most`.
    pub(crate) fn threads(&self, most: usize) -> usize {
        self.threads.unwrap_or_else(crate::default_threads).clamp(1, most.max(1))
    }
}

/// What every report of a load generator against one address starts with.
pub(crate) struct Header {
    mode: &'static str,
    addr: SocketAddr,
    driver: String,
    threads: usize,
    warmup_s: f64,
    pub(crate) duration_s: f64,
}

impl Header {
    pub(crate) fn new(
        mode: &'static str,
        addr: SocketAddr,
        driver: Option<compio::driver::DriverType>,
        threads: usize,
        (warmup, duration): (Duration, Duration),
    ) -> Self {
        let driver = driver.map_or_else(|| "unknown".into(), crate::echo::driver_name);
        Self { mode, addr, driver, threads, warmup_s: warmup.as_secs_f64(), duration_s: duration.as_secs_f64() }
    }

    /// `"mode":...,"warmup_s":...` (without braces).
    pub(crate) fn json(&self) -> String {
        format!(
            "\"mode\":\"{}\",\"addr\":\"{}\",\"driver\":\"{}\",\"threads\":{},\"duration_s\":{},\"warmup_s\":{}",
            self.mode, self.addr, self.driver, self.threads, self.duration_s, self.warmup_s
        )
    }

    /// The first line of the text report, `what` saying what ran.
    pub(crate) fn text(&self, what: &str) -> String {
        format!(
            "{} {}: {what}; {} thread(s) ({} driver), {} s measured after {} s warm-up\n",
            self.mode, self.addr, self.threads, self.driver, self.duration_s, self.warmup_s
        )
    }
}

/// Fails the run if no connection could be made (with the first error),
/// else shows the errors noted.
pub(crate) fn check_connected(head: &Header, connected: usize, samples: &[String]) -> Result<(), String> {
    if connected == 0 {
        return Err(format!(
            "could not connect to {}: {}",
            head.addr,
            samples.first().map(String::as_str).unwrap_or("no connection")
        ));
    }
    show(head.mode, samples);
    Ok(())
}

/// A report that can be printed either way.
pub(crate) trait Report {
    fn json(&self) -> String;
    fn text(&self) -> String;
    /// Errors the run recorded.
    fn errors(&self) -> u64;
}

/// Prints the report as asked; exit code 2 if the run recorded errors.
pub(crate) fn print(args: &RunArgs, report: &impl Report) -> ExitCode {
    if args.is_json() {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.errors() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

/// The first few error messages of one thread (single-threaded).
#[derive(Default)]
pub(crate) struct Notes(RefCell<Vec<String>>);

impl Notes {
    pub(crate) fn note(&self, msg: String) {
        let mut s = self.0.borrow_mut();
        if s.len() < MAX_SAMPLES {
            s.push(msg);
        }
    }

    pub(crate) fn take(&self) -> Vec<String> {
        self.0.take()
    }
}

/// The first few error messages, noted from any thread.
#[derive(Default)]
pub(crate) struct SharedNotes(Mutex<Vec<String>>);

impl SharedNotes {
    pub(crate) fn note(&self, msg: String) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() < MAX_SAMPLES {
            s.push(msg);
        }
    }

    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Shows the first few error messages on stderr, as `moonport-bench MODE: ...`.
pub(crate) fn show(mode: &str, samples: &[String]) {
    for s in samples.iter().take(MAX_SAMPLES) {
        eprintln!("moonport-bench {mode}: {s}");
    }
}

/// Declares an error-counter struct: one `u64` per kind, its total, adding
/// another thread's counts, and both renderings (each field with its JSON
/// name).
macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident => $json:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default, Clone, Copy)]
        struct $name {
            $($(#[$fm])* $field: u64,)*
        }

        impl $name {
            fn total(&self) -> u64 {
                0 $(+ self.$field)*
            }

            fn add(&mut self, o: &Self) {
                $(self.$field += o.$field;)*
            }

            /// `"errors":N,"name":N,...` (without braces).
            fn json(&self) -> String {
                let mut s = format!("\"errors\":{}", self.total());
                $(s.push_str(&format!(",\"{}\":{}", $json, self.$field));)*
                s
            }

            /// `  errors:     N (kind n, ...)` and a newline.
            fn text(&self) -> String {
                let kinds: Vec<String> = vec![$(format!("{} {}", stringify!($field), self.$field)),*];
                format!("  errors:     {} ({})\n", self.total(), kinds.join(", "))
            }
        }
    };
}
pub(crate) use counters;

/// Latency percentiles of a histogram of nanoseconds, in microseconds.
#[derive(Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Latency {
    pub(crate) fn of(hist: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50: us(hist.value_at_quantile(0.50)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        }
    }

    /// `"p50_us":...,"max_us":...` (without braces).
    pub(crate) fn json(&self) -> String {
        format!(
            "\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}",
            self.p50, self.p99, self.p999, self.max
        )
    }

    /// `p50 ... us, p99 ... us, p99.9 ... us, max ... us`.
    pub(crate) fn text(&self) -> String {
        format!("p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us", self.p50, self.p99, self.p999, self.max)
    }
}

#[cfg(test)]
mod tests {
    counters!(Errs { io => "io_errors", mismatch => "mismatches" });

    #[test]
    fn counters_render_and_add() {
        let mut e = Errs { io: 2, mismatch: 1 };
        e.add(&Errs { io: 1, mismatch: 0 });
        assert_eq!(e.total(), 4);
        assert_eq!(e.json(), "\"errors\":4,\"io_errors\":3,\"mismatches\":1");
        assert_eq!(e.text(), "  errors:     4 (io 3, mismatch 1)\n");
    }
}
