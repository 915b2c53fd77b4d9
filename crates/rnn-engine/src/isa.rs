//! The instruction-set tier every kernel runs at, decided once per process.
//!
//! Each kernel is compiled for three tiers and the best one the CPU supports is chosen at
//! run time, so that one build runs on any x86-64 machine. The environment variable
//! `RNN_ISA` (`avx512`, `avx2` or `portable`) forces a lower tier, for tests and
//! benchmarks; a tier the CPU lacks falls back to the best one it has, with a message on
//! standard error.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a tier.
pub const ENV_VAR: &str = "RNN_ISA";

/// An instruction-set tier the kernels are compiled for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// AVX-512F with AVX2 and FMA (x86-64).
    Avx512,
    /// AVX2 with FMA (x86-64).
    Avx2,
    /// What every target has (SSE2 on x86-64): plain Rust the compiler vectorizes.
    Portable,
}

impl Tier {
    /// All tiers, best first.
    pub const ALL: [Tier; 3] = [Tier::Avx512, Tier::Avx2, Tier::Portable];

    /// The tier the kernels of this process run at: `RNN_ISA` if set and supported, else
    /// the best this CPU supports. Decided on the first call and fixed after that.
    pub fn current() -> Tier {
        static TIER: OnceLock<Tier> = OnceLock::new();
        *TIER.get_or_init(|| {
            let (tier, message) = choose(std::env::var(ENV_VAR).ok().as_deref(), Tier::best());
            if let Some(message) = message {
                eprintln!("{message}");
            }
            tier
        })
    }

    /// The best tier this CPU supports.
    pub fn best() -> Tier {
        Tier::ALL
            .into_iter()
            .find(|t| t.is_supported())
            .unwrap_or(Tier::Portable)
    }

    /// Whether this CPU can run the tier.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Tier::Avx512 | Tier::Avx2 => false,
            Tier::Portable => true,
        }
    }

    /// The tier's name, as `RNN_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Avx512 => "avx512",
            Tier::Avx2 => "avx2",
            Tier::Portable => "portable",
        }
    }

    /// The tier named `name` (as `RNN_ISA` spells it).
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The tier to run given the value of `RNN_ISA` and the best tier of the CPU, and the
/// message to print when the request cannot be followed.
fn choose(requested: Option<&str>, best: Tier) -> (Tier, Option<String>) {
    let Some(raw) = requested else {
        return (best, None);
    };
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return (best, None);
    }
    match Tier::from_name(&name) {
        // A lower tier than the best always runs: the CPU has everything it needs.
        Some(tier) if tier >= best => (tier, None),
        Some(tier) => (
            best,
            Some(format!(
                "{ENV_VAR}={raw}: this CPU does not support the {tier} tier; running at {best}"
            )),
        ),
        None => (
            best,
            Some(format!(
                "{ENV_VAR}={raw} is not a tier (expected avx512, avx2 or portable); running at {best}"
            )),
        ),
    }
}

/// The tier the kernels run at (see [`Tier::current`]).
#[inline]
pub(crate) fn tier() -> Tier {
    Tier::current()
}

/// For tests of tier-specific kernels: whether this process runs at `needed`. When it
/// does not, the test `name` is reported as skipped, by name, on standard error and in
/// the file `RNN_SKIP_LOG` names (CI prints it after each tier's run), so that no test
/// passes in silence without testing anything.
#[cfg(test)]
pub(crate) fn runs_at(needed: Tier, name: &str) -> bool {
    let current = tier();
    if current == needed {
        return true;
    }
    let line = format!("skipped {name}: needs the {needed} tier, this process runs at {current}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("RNN_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut f) = file {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_followed_down_and_refused_up() {
        assert_eq!(choose(None, Tier::Avx512), (Tier::Avx512, None));
        assert_eq!(choose(Some(""), Tier::Avx2), (Tier::Avx2, None));
        assert_eq!(choose(Some("avx2"), Tier::Avx512), (Tier::Avx2, None));
        assert_eq!(
            choose(Some("PORTABLE"), Tier::Avx512),
            (Tier::Portable, None)
        );
        let (tier, message) = choose(Some("avx512"), Tier::Avx2);
        assert_eq!(tier, Tier::Avx2);
        let message = message.expect("a message");
        assert!(message.contains("does not support the avx512 tier; running at avx2"));
        let (tier, message) = choose(Some("sse9"), Tier::Portable);
        assert_eq!(tier, Tier::Portable);
        assert!(
            message
                .expect("a message")
                .contains("RNN_ISA=sse9 is not a tier")
        );
    }

    #[test]
    fn names_round_trip_and_the_current_tier_is_supported() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
        }
        assert!(Tier::current().is_supported());
        assert!(Tier::Portable.is_supported());
        assert!(Tier::current() >= Tier::best());
    }
}
