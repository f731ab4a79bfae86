//! The phi-accrual failure detector (Hayashibara et al., 2004).
//!
//! Instead of a yes/no timeout, it turns "how long since we last heard from
//! this member" into a suspicion level scaled to that member's own history:
//! with the inter-arrival times of evidence of life modelled as a normal
//! distribution (mean μ, deviation σ over a sliding window),
//!
//! ```text
//! phi(Δt) = −log10(1 − F(Δt))      F = CDF of N(μ + acceptable_pause, σ)
//! ```
//!
//! phi = 1 means a 10% chance that a live member would have been this quiet,
//! phi = 8 one in 10^8. A jittery link gets a wide σ and so a patient
//! detector; a steady one gets a quick one.
//!
//! This module is the detector alone (the formula, a windowed history and
//! its parameters); how its verdicts combine with SWIM's suspicion is the
//! endpoint's business.
//!
//! The tail probability is computed in log space from a Chebyshev fit of
//! erfc (fractional error below 1.2·10⁻⁷, Numerical Recipes' `erfcc`), so
//! phi stays finite and accurate far into the tail instead of saturating
//! where `1 − F` underflows.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Time;

/// Natural log of the upper tail `1 − Φ(y)` of the standard normal.
fn ln_upper_tail(y: f64) -> f64 {
    // 1 − Φ(y) = erfc(y / √2) / 2.
    let z = y / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z.abs());
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ln_erfc_abs = t.ln() - z * z + poly;
    let ln_erfc = if z >= 0.0 {
        ln_erfc_abs
    } else {
        (2.0 - ln_erfc_abs.exp()).ln()
    };
    ln_erfc - std::f64::consts::LN_2
}

/// phi for a gap of `dt` seconds when gaps are normally distributed with
/// `mean` and `std_dev` (seconds): `−log10(1 − Φ((dt − mean) / std_dev))`.
pub fn phi(dt: f64, mean: f64, std_dev: f64) -> f64 {
    let y = (dt - mean) / std_dev;
    (-ln_upper_tail(y) / std::f64::consts::LN_10).max(0.0)
}

/// One peer's detector: a sliding window of the intervals between pieces of
/// evidence that it is alive, and the time of the last one.
#[derive(Clone, Debug)]
pub struct PhiDetector {
    intervals: VecDeque<f64>,
    window: usize,
    sum: f64,
    sum_sq: f64,
    last: Option<Time>,
}

/// The detector's tuning.
#[derive(Clone, Copy, Debug)]
pub struct PhiParams {
    /// Floor of the deviation, so a perfectly regular history does not make
    /// the detector hair-triggered.
    pub min_std_dev: Duration,
    /// Added to the mean: silence this long beyond the usual rhythm is
    /// still normal (GC pauses, bursts of load).
    pub acceptable_pause: Duration,
    /// The interval assumed after the first heartbeat, before any history.
    pub first_interval: Duration,
}

impl PhiDetector {
    /// An empty detector keeping the last `window` intervals.
    pub fn new(window: usize) -> PhiDetector {
        PhiDetector {
            intervals: VecDeque::new(),
            window: window.max(1),
            sum: 0.0,
            sum_sq: 0.0,
            last: None,
        }
    }

    /// Records evidence of life at `now`.
    pub fn heartbeat(&mut self, now: Time) {
        if let Some(last) = self.last {
            if now <= last {
                return;
            }
            let dt = (now - last).as_secs_f64();
            if self.intervals.len() == self.window {
                if let Some(old) = self.intervals.pop_front() {
                    self.sum -= old;
                    self.sum_sq -= old * old;
                }
            }
            self.intervals.push_back(dt);
            self.sum += dt;
            self.sum_sq += dt * dt;
        }
        self.last = Some(now);
    }

    /// The mean of the recorded intervals, once there is one.
    pub fn mean_interval(&self) -> Option<Duration> {
        (!self.intervals.is_empty())
            .then(|| Duration::from_secs_f64(self.sum / self.intervals.len() as f64))
    }

    /// When evidence of life last arrived.
    pub fn last_heartbeat(&self) -> Option<Time> {
        self.last
    }

    /// The current suspicion level; 0 before any evidence arrived.
    pub fn phi(&self, now: Time, p: PhiParams) -> f64 {
        let Some(last) = self.last else { return 0.0 };
        let (mean, var) = if self.intervals.is_empty() {
            // One heartbeat only: assume the expected rhythm, as Akka does
            // with its first-heartbeat estimate.
            let m = p.first_interval.as_secs_f64();
            (m, (m / 4.0) * (m / 4.0))
        } else {
            let n = self.intervals.len() as f64;
            let mean = self.sum / n;
            (mean, (self.sum_sq / n - mean * mean).max(0.0))
        };
        let std_dev = var.sqrt().max(p.min_std_dev.as_secs_f64()).max(1e-6);
        phi(
            (now - last).as_secs_f64(),
            mean + p.acceptable_pause.as_secs_f64(),
            std_dev,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn phi_matches_hand_computed_normal_tails() {
        // At the mean, 1 − F = 0.5: phi = log10 2.
        assert!(close(phi(1.0, 1.0, 0.1), std::f64::consts::LOG10_2, 1e-6));
        // One sigma: 1 − Φ(1) = 0.158 655 25 → phi = 0.799 546.
        assert!(close(phi(1.1, 1.0, 0.1), 0.799_546, 1e-5));
        // Two sigma: 1 − Φ(2) = 0.022 750 13 → 1.643 020.
        assert!(close(phi(1.2, 1.0, 0.1), 1.643_020, 1e-5));
        // Three sigma: 1 − Φ(3) = 0.001 349 898 → 2.869 698.
        assert!(close(phi(1.3, 1.0, 0.1), 2.869_698, 1e-5));
        // Six sigma: 1 − Φ(6) = 9.865 876e-10 → 9.005 867.
        assert!(close(phi(1.6, 1.0, 0.1), 9.005_867, 1e-4));
        // Far tail stays finite and keeps growing (no underflow to inf):
        // 1 − Φ(40) ≈ 3.655e-350 → phi ≈ 349.44.
        let far = phi(5.0, 1.0, 0.1);
        assert!(far.is_finite() && close(far, 349.44, 0.05), "{far}");
        // Early is not suspicious: 1 − Φ(−3) = 0.998 650 → 0.000 587.
        assert!(close(phi(0.7, 1.0, 0.1), 0.000_587, 1e-5));
    }

    #[test]
    fn threshold_8_at_the_expected_distance() {
        // phi = 8 ⇔ 1 − Φ(y) = 1e-8 ⇔ y ≈ 5.612.
        assert!(close(phi(1.0 + 5.612 * 0.1, 1.0, 0.1), 8.0, 0.01));
    }

    fn params() -> PhiParams {
        PhiParams {
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::ZERO,
            first_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn detector_learns_the_rhythm_and_rises_with_silence() {
        let mut d = PhiDetector::new(100);
        assert_eq!(
            d.phi(Time::from_secs(100), params()),
            0.0,
            "no evidence, no suspicion"
        );
        for i in 0..50 {
            // Alternating 0.9 s and 1.1 s: mean 1 s, deviation 0.1 s.
            d.heartbeat(Time::from_millis(
                i * 1000 + if i % 2 == 0 { 0 } else { 100 },
            ));
        }
        let last = d.last_heartbeat().unwrap();
        let at = |ms: u64| d.phi(last + Duration::from_millis(ms), params());
        assert!(close(at(1000), 0.301, 0.02), "{}", at(1000));
        assert!(close(at(1300), 2.87, 0.05), "{}", at(1300));
        assert!(at(2000) > 8.0);
        assert!(at(500) < 0.01);
    }

    #[test]
    fn min_std_dev_and_pause_make_it_patient() {
        let mut d = PhiDetector::new(10);
        for i in 0..20 {
            d.heartbeat(Time::from_secs(i));
        }
        // Perfectly regular: σ would be 0; the floor of 100 ms applies.
        let p = params();
        let last = d.last_heartbeat().unwrap();
        assert!(close(
            d.phi(last + Duration::from_millis(1200), p),
            1.643,
            0.01
        ));
        let patient = PhiParams {
            acceptable_pause: Duration::from_secs(1),
            ..p
        };
        assert!(d.phi(last + Duration::from_millis(1200), patient) < 0.01);
    }

    #[test]
    fn window_forgets_old_intervals() {
        let mut d = PhiDetector::new(4);
        let mut t = Time::ZERO;
        for _ in 0..10 {
            t += Duration::from_secs(10);
            d.heartbeat(t);
        }
        for _ in 0..4 {
            t += Duration::from_secs(1);
            d.heartbeat(t);
        }
        // Only the four 1 s intervals remain: 3 s of silence is alarming.
        assert!(d.phi(t + Duration::from_secs(3), params()) > 8.0);
    }
}
