//! Learning-rate schedules: a linear warm-up, then a constant rate, a cosine decay or a
//! step decay. The rate of update `t` (1-based) of a run of `total` updates is the
//! optimizer's learning rate times [`Schedule::factor`].

use serde::{Deserialize, Serialize};

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Updates over which the rate climbs linearly from lr/warmup to lr (0: none).
    pub warmup: u64,
    /// What happens after the warm-up.
    pub decay: Decay,
}

/// The decay after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decay {
    /// The rate stays at lr.
    #[default]
    Constant,
    /// Half a cosine from lr down to `final_fraction`·lr at the last update.
    Cosine {
        /// The fraction of lr left at the end.
        final_fraction: f64,
    },
    /// The rate is multiplied by `factor` every `every` updates.
    Step {
        /// Updates between two cuts.
        every: u64,
        /// What each cut multiplies the rate by.
        factor: f64,
    },
}

impl Schedule {
    /// A constant rate, the classic recipes' choice.
    pub const CONSTANT: Schedule = Schedule {
        warmup: 0,
        decay: Decay::Constant,
    };

    /// A warm-up of `warmup` updates, then a cosine down to `final_fraction` of the rate.
    pub fn cosine(warmup: u64, final_fraction: f64) -> Self {
        Schedule {
            warmup,
            decay: Decay::Cosine { final_fraction },
        }
    }

    // ANCHOR: factor
    /// The multiplier of the learning rate at update `t` (1-based) of `total`.
    pub fn factor(&self, t: u64, total: u64) -> f64 {
        if t <= self.warmup {
            return t as f64 / self.warmup as f64;
        }
        // Updates since the warm-up ended, starting at 0.
        let s = t - self.warmup - 1;
        match self.decay {
            Decay::Constant => 1.0,
            Decay::Cosine { final_fraction } => {
                let span = total.saturating_sub(self.warmup + 1).max(1);
                let progress = (s as f64 / span as f64).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                final_fraction + (1.0 - final_fraction) * cos
            }
            Decay::Step { every, factor } => {
                let cuts = i32::try_from(s / every.max(1)).unwrap_or(i32::MAX);
                factor.powi(cuts)
            }
        }
    }
    // ANCHOR_END: factor

    /// Checks the numbers, naming the first bad one as `(what, value, expected)`.
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        match self.decay {
            Decay::Constant => Ok(()),
            Decay::Cosine { final_fraction } if !(0.0..=1.0).contains(&final_fraction) => Err((
                "final lr fraction",
                final_fraction.to_string(),
                "between 0 and 1",
            )),
            Decay::Step { every: 0, .. } => Err(("decay every", "0".into(), "at least 1")),
            Decay::Step { factor, .. } if !(factor > 0.0 && factor <= 1.0) => {
                Err(("decay factor", factor.to_string(), "above 0 and at most 1"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the rate never moves (no warm-up, no decay).
    pub fn is_constant(&self) -> bool {
        self.warmup == 0 && self.decay == Decay::Constant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_climbs_linearly_to_the_full_rate() {
        let s = Schedule {
            warmup: 4,
            decay: Decay::Constant,
        };
        let f: Vec<f64> = (1..=6).map(|t| s.factor(t, 10)).collect();
        assert_eq!(f, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        assert!(Schedule::CONSTANT.is_constant() && !s.is_constant());
        assert_eq!(Schedule::CONSTANT.factor(1, 1), 1.0);
    }

    #[test]
    fn cosine_starts_at_one_and_ends_at_its_floor() {
        let s = Schedule::cosine(10, 0.1);
        assert_eq!(s.factor(10, 111), 1.0);
        assert_eq!(s.factor(11, 111), 1.0);
        // Half way through the decay (50 of its 100 updates) the cosine is at its middle.
        assert!((s.factor(61, 111) - 0.55).abs() < 1e-12);
        assert!((s.factor(111, 111) - 0.1).abs() < 1e-12);
        // Past the end the rate stays at its floor.
        assert!((s.factor(500, 111) - 0.1).abs() < 1e-12);
        let f: Vec<f64> = (11..=111).map(|t| s.factor(t, 111)).collect();
        assert!(f.windows(2).all(|w| w[1] <= w[0]), "not decreasing");
    }

    #[test]
    fn step_decay_cuts_every_so_many_updates() {
        let s = Schedule {
            warmup: 0,
            decay: Decay::Step {
                every: 3,
                factor: 0.5,
            },
        };
        let f: Vec<f64> = (1..=7).map(|t| s.factor(t, 100)).collect();
        assert_eq!(f, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn bad_numbers_are_named() {
        assert_eq!(
            Schedule::cosine(0, 1.5).check().unwrap_err().0,
            "final lr fraction"
        );
        let step = |every, factor| Schedule {
            warmup: 0,
            decay: Decay::Step { every, factor },
        };
        assert_eq!(step(0, 0.5).check().unwrap_err().0, "decay every");
        assert_eq!(step(5, 0.0).check().unwrap_err().0, "decay factor");
        assert!(step(5, 1.0).check().is_ok());
    }
}
