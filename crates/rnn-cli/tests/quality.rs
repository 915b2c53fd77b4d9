//! The features behind the quality table: the `names` and `shakespeare` presets on their
//! bundled data, learning-rate schedules and AdamW from the command line, the best
//! checkpoint by validation loss, the test text reported at the end, `eval --split` and
//! the novelty report of samples.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

mod common;
use common::{fails_cleanly, succeeds as ok};

/// The number after `label` in `text` (up to the next space or comma).
fn number_after(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {text}"))
        + label.len();
    let rest = text[at..].trim_start();
    let end = rest.find([' ', ',']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{label:?}: {e}: {text}"))
}

/// A small copy of the names preset: the bundled train names, the bundled test names.
fn names_run(dir: &Path, out: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--preset",
        "names",
        "--hidden",
        "24",
        "--steps",
        "60",
        "--eval-every",
        "20",
        "--sample-every",
        "0",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    ok(dir, &args)
}

#[test]
fn the_names_preset_reports_its_best_checkpoint_on_the_test_names() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let stdout = names_run(dir, "names", &[]);
    // The preset's recipe, on makemore's bundled training names.
    assert!(stdout.contains("data: bundled:names-train.txt (lines mode, 31033 lines"));
    assert!(
        stdout.contains("lstm x 1 layer(s), n_a 24, adam lr 0.002, warm-up 100, cosine to 0.1x"),
        "{stdout}"
    );
    let best = dir.join("names/best.json");
    assert!(best.is_file());
    let best_val = number_after(&stdout, "best validation:");
    let test = number_after(&stdout, "test:");
    assert!(stdout.contains("of bundled:names-test.txt), with names/best.json"));
    // The printed numbers are the best checkpoint's: `eval` finds them again.
    let eval = |split: &[&str], data: &[&str]| {
        let mut args = vec!["eval", "--checkpoint", "names/best.json", "--json"];
        args.extend_from_slice(split);
        args.extend_from_slice(data);
        let json: serde_json::Value = serde_json::from_str(&ok(dir, &args)).unwrap();
        json["loss_per_char"].as_f64().unwrap()
    };
    assert!((eval(&["--split", "val"], &[]) - best_val).abs() < 5e-5);
    let test_file = dir.join("test.txt");
    fs::write(
        &test_file,
        include_str!("../../../data/names-test.txt").as_bytes(),
    )
    .unwrap();
    assert!((eval(&[], &["--data", "test.txt"]) - test).abs() < 5e-5);
    // The three eval splits are different texts: train and val add up to all.
    let (all, train, val) = (
        eval(&[], &[]),
        eval(&["--split", "train"], &[]),
        eval(&["--split", "val"], &[]),
    );
    assert!(train != val && (all - (0.95 * train + 0.05 * val)).abs() < 0.05);
    // makemore's novelty report of 1,000 samples: the three counts add up.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("novelty of 1000 samples: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let counts: Vec<usize> = line
        .split(['(', ')', ':', ','])
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{line}");
    assert_eq!(counts.iter().sum::<usize>(), 1000, "{line}");
}

#[test]
fn best_json_holds_the_lowest_validation_loss() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    // A high constant rate, so that the validation loss need not fall at every pass.
    let stdout = names_run(
        dir,
        "hot",
        &[
            "--lr",
            "0.02",
            "--schedule",
            "constant",
            "--warmup",
            "0",
            "--cell",
            "gru",
        ],
    );
    let history = fs::read_to_string(dir.join("hot/history.csv")).unwrap();
    let best_step = number_after(&stdout, "at step") as u64;
    let best = number_after(&stdout, "best validation:");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("hot/best.json")).unwrap()).unwrap();
    assert_eq!(
        checkpoint["state"]["step"].as_u64(),
        Some(best_step),
        "{stdout}"
    );
    // Every validation in the history is at least the best (rows hold it per name; the
    // best is per character, so compare through the ratio of the last row).
    let vals: Vec<(u64, f64)> = history
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split(',').collect();
            Some((f[0].parse().ok()?, f[3].parse().ok()?))
        })
        .collect();
    assert_eq!(vals.len(), 3, "{history}");
    let at_best = vals.iter().find(|(s, _)| *s == best_step).unwrap().1;
    assert!(vals.iter().all(|(_, v)| *v >= at_best), "{history}");
    assert!(best.is_finite());
    // A new run over it with --force starts without the old best.
    fails_cleanly(dir, &["train", "--out", "hot", "--steps", "5"]);
    ok(
        dir,
        &[
            "train",
            "--out",
            "hot",
            "--steps",
            "5",
            "--force",
            "--sample-every",
            "0",
        ],
    );
    let best: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("hot/best.json")).unwrap()).unwrap();
    assert_eq!(
        best["state"]["step"], 5,
        "the new run's own best (at its last step)"
    );
}

#[test]
fn schedules_and_weight_decay_from_the_command_line() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    fs::write(
        dir.join("notes.txt"),
        include_str!("../../../data/rnn-notes.txt"),
    )
    .unwrap();
    let stdout = ok(
        dir,
        &[
            "train",
            "--preset",
            "text",
            "--data",
            "notes.txt",
            "--hidden",
            "16",
            "--steps",
            "20",
            "--schedule",
            "step",
            "--decay-every",
            "5",
            "--decay-factor",
            "0.5",
            "--warmup",
            "3",
            "--weight-decay",
            "0.1",
            "--sample-every",
            "0",
            "--out",
            "sched",
        ],
    );
    assert!(
        stdout.contains("adamw lr 0.002, warm-up 3, x0.5 every 5 steps, weight decay 0.1"),
        "{stdout}"
    );
    let ckpt: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("sched/checkpoint.json")).unwrap())
            .unwrap();
    let config = &ckpt["state"]["config"];
    assert_eq!(config["schedule"]["warmup"], 3);
    assert_eq!(config["schedule"]["decay"]["kind"], "step");
    assert_eq!(config["optimizer"]["weight_decay"], 0.1);
    // Past 3 warm-up steps and 3 cuts (steps 9, 14, 19) the last update ran at lr/8.
    let lr = ckpt["state"]["optimizer"]["config"]["lr"].as_f64().unwrap();
    assert!((lr - 0.002 / 8.0).abs() < 1e-12, "{lr}");
    for (args, says) in [
        (
            &["train", "--final-lr-fraction", "0.1"][..],
            "--final-lr-fraction applies to --schedule cosine only",
        ),
        (
            &["train", "--schedule", "cosine", "--decay-every", "5"],
            "--decay-every and --decay-factor applies to --schedule step only",
        ),
        (
            &["train", "--weight-decay", "0.1"],
            "--weight-decay needs --optimizer adam",
        ),
        (
            &["train", "--schedule", "step", "--decay-factor", "0"],
            "invalid decay factor = 0",
        ),
        (
            &["train", "--schedule", "cosine", "--final-lr-fraction", "2"],
            "invalid final lr fraction = 2",
        ),
        (
            &["train", "--optimizer", "adam", "--weight-decay=-1"],
            "invalid weight_decay = -1",
        ),
        (
            &["train", "--resume", "sched", "--schedule", "cosine"],
            "--schedule cannot be combined with --resume",
        ),
    ] {
        let err = fails_cleanly(dir, args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn test_texts_and_novelty_are_checked_before_anything_runs() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("odd.txt"), "anna\nzoë\n").unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "train", "--preset", "names", "--test", "odd.txt", "--out", "odd",
        ],
    );
    assert!(err.contains("odd.txt") && err.contains('ë'), "{err}");
    assert!(!dir.join("odd").exists(), "a refused run leaves nothing");
    // The novelty report needs a names model; its counts add up to --n.
    ok(
        dir,
        &[
            "train",
            "--steps",
            "30",
            "--sample-every",
            "0",
            "--out",
            "dinos",
        ],
    );
    let out = ok(
        dir,
        &[
            "sample",
            "--checkpoint",
            "dinos",
            "--n",
            "40",
            "--novelty",
            "--test",
            "odd.txt",
        ],
    );
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("novelty of 40 samples: "), "{out}");
    assert_eq!(out.lines().count(), 41);
    fs::write(
        dir.join("t.txt"),
        "some text to read as a stream. ".repeat(20),
    )
    .unwrap();
    ok(
        dir,
        &[
            "train", "--preset", "text", "--data", "t.txt", "--hidden", "8", "--steps", "3",
            "--out", "stream",
        ],
    );
    let err = fails_cleanly(dir, &["sample", "--checkpoint", "stream", "--novelty"]);
    assert!(err.contains("--novelty counts names"), "{err}");
    ok(
        dir,
        &[
            "train",
            "--steps",
            "3",
            "--val-fraction",
            "0",
            "--out",
            "noval",
        ],
    );
    let err = fails_cleanly(dir, &["eval", "--checkpoint", "noval", "--split", "val"]);
    assert!(err.contains("held nothing out"), "{err}");
}
