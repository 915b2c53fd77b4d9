//! `charrnn` with the gated cells and depth: the command end to end (train, sample,
//! resume bit for bit, export, import, eval) and the gradient check of every cell.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

mod common;
use common::{charrnn, fails_cleanly, succeeds};

const TEXT: &str = "It was the best of times, it was the worst of times, it was the age of \
                    wisdom, it was the age of foolishness, it was the epoch of belief.\n";

/// `charrnn train` with the stack flags on a small text, in `dir/name`.
fn train(dir: &Path, name: &str, steps: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train", "--data", "text.txt", "--mode", "stream", "--preset", "text",
    ];
    args.extend(["--cell", "lstm", "--layers", "2", "--dropout", "0.2"]);
    args.extend([
        "--hidden",
        "16",
        "--batch",
        "4",
        "--seq-len",
        "16",
        "--steps",
        steps,
    ]);
    args.extend([
        "--checkpoint-every",
        "10",
        "--sample-every",
        "0",
        "--out",
        name,
    ]);
    args.extend(extra);
    succeeds(dir, &args)
}

#[test]
fn a_two_layer_lstm_trains_samples_resumes_exports_and_evaluates() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("text.txt"), TEXT.repeat(20)).unwrap();
    let stdout = train(dir, "straight", "30", &[]);
    assert!(
        stdout.contains("model: lstm x 2 layer(s) (dropout 0.2), n_a 16"),
        "{stdout}"
    );
    // Stopped at 20 and resumed to 30: the same checkpoint, byte for byte.
    train(dir, "split", "20", &[]);
    charrnn(dir)
        .args(["train", "--resume", "split", "--steps", "30"])
        .assert()
        .success();
    let a = fs::read(dir.join("straight/checkpoint.json")).unwrap();
    let b = fs::read(dir.join("split/checkpoint.json")).unwrap();
    assert!(
        a == b,
        "a resumed two-layer LSTM differs from a straight run"
    );

    // Samples are deterministic and use the text's characters.
    let sample = |seed: &str| {
        let out = charrnn(dir)
            .args([
                "sample",
                "--checkpoint",
                "straight",
                "--n",
                "2",
                "--seed",
                seed,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(sample("3"), sample("3"));
    assert!(sample("3").chars().all(|c| TEXT.contains(c) || c == '\n'));

    // Export, import: the same loss per character.
    charrnn(dir)
        .args([
            "export",
            "--checkpoint",
            "straight",
            "--out",
            "m.safetensors",
        ])
        .assert()
        .success();
    charrnn(dir)
        .args([
            "import",
            "m.safetensors",
            "--out",
            "imported",
            "--data",
            "text.txt",
        ])
        .assert()
        .success();
    let eval = |run: &str| {
        let out = charrnn(dir)
            .args(["eval", "--checkpoint", run, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["loss_per_char"].as_f64().unwrap()
    };
    let (trained, imported) = (eval("straight"), eval("imported"));
    assert_eq!(trained, imported);
    let uniform = (TEXT
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len() as f64)
        .ln();
    assert!(trained < uniform, "{trained} vs a uniform guess {uniform}");
}

#[test]
fn the_gradient_check_covers_every_cell_and_depth() {
    let tmp = TempDir::new().unwrap();
    for (cell, layers, dropout) in [
        ("rnn", "2", "0"),
        ("gru", "1", "0"),
        ("gru", "2", "0.3"),
        ("lstm", "1", "0"),
        ("lstm", "3", "0.2"),
    ] {
        let out = charrnn(tmp.path())
            .args([
                "gradcheck",
                "--cell",
                cell,
                "--layers",
                layers,
                "--dropout",
                dropout,
            ])
            .args(["--hidden", "4", "--vocab", "5", "--seq-len", "6"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cell} x {layers}: {stdout}");
        assert!(
            stdout.contains(&format!("{cell} x {layers} layer(s)")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("w_hh_l{}", layers.parse::<usize>().unwrap() - 1)));
        assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    }
    let err = fails_cleanly(tmp.path(), &["gradcheck", "--layers", "9"]);
    assert!(err.contains("layers"), "{err}");
    let err = fails_cleanly(
        tmp.path(),
        &["gradcheck", "--cell", "gru", "--dropout", "1"],
    );
    assert!(err.contains("dropout"), "{err}");
}

#[test]
fn bad_model_flags_are_named() {
    let tmp = TempDir::new().unwrap();
    for (flags, field) in [
        (&["--layers", "0"][..], "layers"),
        (&["--layers", "9"], "layers"),
        (&["--dropout", "0.5"], "dropout"),
        (&["--layers", "2", "--dropout", "1"], "dropout"),
        (&["--layers", "2", "--dropout=-0.1"], "dropout"),
        (&["--preset", "shakespeare", "--reset-state"], "reset_state"),
    ] {
        let args: Vec<&str> = ["train", "--steps", "2"]
            .iter()
            .chain(flags)
            .copied()
            .collect();
        let err = fails_cleanly(tmp.path(), &args);
        assert!(err.contains(field), "{flags:?}: {err}");
    }
    // A resumed run keeps its model.
    let err = fails_cleanly(tmp.path(), &["train", "--resume", "x", "--cell", "gru"]);
    assert!(err.contains("--cell"), "{err}");
}
