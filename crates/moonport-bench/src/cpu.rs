//! The load generator's own CPU use: user + system time of this process (all
//! its threads, from `getrusage`) over the measured window, as a percentage of
//! one core. On a machine where the generator shares the cores with the
//! server, this tells how much of the machine the measuring itself took.

use std::time::{Duration, Instant};

/// User + system CPU time this process has used so far (`None` where
/// `getrusage` is not available).
fn process_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the struct passed.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
            return None;
        }
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Some(tv(u.ru_utime) + tv(u.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

/// A point in wall-clock and CPU time.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    at: Instant,
    cpu: Option<Duration>,
}

impl Sample {
    pub(crate) fn now() -> Self {
        Self { at: Instant::now(), cpu: process_time() }
    }

    /// Wall-clock seconds since `earlier`.
    pub(crate) fn seconds_since(&self, earlier: &Sample) -> f64 {
        self.at.saturating_duration_since(earlier.at).as_secs_f64()
    }

    /// CPU used since `earlier`, as a percentage of one core.
    pub(crate) fn pct_since(&self, earlier: &Sample) -> Option<f64> {
        let wall = self.seconds_since(earlier);
        let cpu = self.cpu?.checked_sub(earlier.cpu?)?.as_secs_f64();
        (wall > 0.0).then(|| 100.0 * cpu / wall)
    }
}

/// Sleeps until `at` (no earlier), then samples.
pub(crate) fn sample_at(at: Instant) -> Sample {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    Sample::now()
}

/// The percentage as a JSON value (`null` when unknown).
pub(crate) fn json(pct: Option<f64>) -> String {
    pct.map_or_else(|| "null".into(), |p| format!("{p:.1}"))
}

/// The percentage for the text reports.
pub(crate) fn text(pct: Option<f64>) -> String {
    pct.map_or_else(
        || "  load gen:   CPU use unknown\n".into(),
        |p| format!("  load gen:   {p:.0}% of one core (user + system, all its threads, measured window)\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::Sample;
    use std::time::{Duration, Instant};

    #[test]
    fn percentage_of_one_core() {
        let t0 = Instant::now();
        let a = Sample { at: t0, cpu: Some(Duration::from_millis(100)) };
        let b = Sample { at: t0 + Duration::from_secs(2), cpu: Some(Duration::from_millis(3100)) };
        assert_eq!(b.pct_since(&a), Some(150.0));
        assert_eq!(a.pct_since(&a), None, "no time passed");
        assert_eq!(b.pct_since(&Sample { at: t0, cpu: None }), None);
        assert!(Sample::now().cpu.is_some(), "getrusage works on this platform");
    }
}
