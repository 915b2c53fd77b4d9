//! makemore's novelty report: of the names a model invents, how many it copied from its
//! training data, how many are in the held-out test names, and how many are new.

use std::collections::HashSet;
use std::fmt;

/// Counts of samples by where they are found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Novelty {
    /// Samples that are lines of the training data.
    pub in_train: usize,
    /// Samples found in the test data and not in the training data.
    pub in_test: usize,
    /// Samples found in neither.
    pub new: usize,
}

impl Novelty {
    /// Sorts `samples` by where they are found: `train` first, then `test`.
    pub fn count<'a>(
        samples: impl IntoIterator<Item = &'a str>,
        train: &[String],
        test: &[String],
    ) -> Self {
        let train: HashSet<&str> = train.iter().map(String::as_str).collect();
        let test: HashSet<&str> = test.iter().map(String::as_str).collect();
        let mut n = Novelty::default();
        for s in samples {
            if train.contains(s) {
                n.in_train += 1;
            } else if test.contains(s) {
                n.in_test += 1;
            } else {
                n.new += 1;
            }
        }
        n
    }

    /// All samples counted.
    pub fn total(&self) -> usize {
        self.in_train + self.in_test + self.new
    }
}

impl Novelty {
    /// The report in words, with the test count only when there was a test text.
    pub fn describe(&self, with_test: bool) -> String {
        let pct = |k: usize| 100.0 * k as f64 / self.total().max(1) as f64;
        let train = format!(
            "{} in the training data ({:.1}%)",
            self.in_train,
            pct(self.in_train)
        );
        let new = format!("{} new ({:.1}%)", self.new, pct(self.new));
        if with_test {
            let test = format!(
                "{} in the test data ({:.1}%)",
                self.in_test,
                pct(self.in_test)
            );
            format!("{train}, {test}, {new}")
        } else {
            format!("{train}, {new}")
        }
    }
}

impl fmt::Display for Novelty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_sorted_train_first() {
        let train = vec!["anna".to_string(), "bob".to_string()];
        let test = vec!["bob".to_string(), "carl".to_string()];
        let n = Novelty::count(["anna", "bob", "carl", "dora", "carl", ""], &train, &test);
        assert_eq!(
            n,
            Novelty {
                in_train: 2,
                in_test: 2,
                new: 2
            }
        );
        assert_eq!(
            n.to_string(),
            "2 in the training data (33.3%), 2 in the test data (33.3%), 2 new (33.3%)"
        );
        assert_eq!(
            n.describe(false),
            "2 in the training data (33.3%), 2 new (33.3%)"
        );
    }
}
