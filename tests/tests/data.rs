//! The quality-benchmark data in `data/`: the counts its README states, makemore's split of
//! the names, and that every file loads as a corpus.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rnn_data::{Corpus, CorpusOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join(name)
}

fn names(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(name)).unwrap();
    text.lines().map(str::to_string).collect()
}

/// Each name with the number of times it occurs.
fn counts(names: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.as_str()).or_insert(0) += 1;
    }
    m
}

#[test]
fn makemores_split_is_disjoint_and_complete() {
    let all = names("names.txt");
    let train = names("names-train.txt");
    let test = names("names-test.txt");
    assert_eq!(
        (all.len(), train.len(), test.len()),
        (32_033, 31_033, 1_000)
    );
    // Together the splits are exactly the names, each as often as in names.txt.
    let joined: Vec<String> = train.iter().chain(&test).cloned().collect();
    assert_eq!(counts(&joined), counts(&all));
    assert!(
        all.iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()))
    );
}

#[test]
fn every_file_loads_as_a_corpus() {
    for (file, options, vocab) in [
        ("names.txt", CorpusOptions::lines(), 27),
        ("names-train.txt", CorpusOptions::lines(), 27),
        ("names-test.txt", CorpusOptions::lines(), 27),
        ("tinyshakespeare.txt", CorpusOptions::stream(), 65),
    ] {
        let corpus = Corpus::from_path(data(file), options).unwrap();
        assert_eq!(corpus.vocab().len(), vocab, "{file}");
    }
    let text = std::fs::read_to_string(data("tinyshakespeare.txt")).unwrap();
    assert_eq!(
        (text.chars().count(), text.lines().count()),
        (1_115_394, 40_000)
    );
}
