//! End-to-end tests of the `charrnn` binary, each in its own temporary directory.
//!
//! Runs are small (a few hundred steps, n_a = 16) so the whole file stays fast in debug.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

mod common;
use common::charrnn;

const HISTORY_HEADER: &str = "step,loss,smoothed_loss,val_loss,grad_norm,chars_per_s";
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A small training run on the bundled names into `dir/name`; returns the run directory.
fn train_small(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    charrnn(dir)
        .args([
            "train",
            "--steps",
            "300",
            "--checkpoint-every",
            "100",
            "--hidden",
            "16",
        ])
        .args(["--sample-every", "100", "--out"])
        .arg(&out)
        .args(extra)
        .assert()
        .success();
    out
}

/// Every file and directory under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `args` in `dir` and checks a clean failure: exit code 1, one line on stderr starting
/// with "error:", no panic, and nothing created or left behind in `dir`. Returns stderr.
fn fails_cleanly(dir: &Path, args: &[&str]) -> String {
    let before = listing(dir);
    let stderr = common::fails_cleanly(dir, args);
    assert_eq!(listing(dir), before, "{args:?} left files behind");
    stderr
}

fn stdout_of(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn checkpoint_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(run.join("checkpoint.json")).unwrap()).unwrap()
}

#[test]
fn train_writes_a_run_and_sample_is_deterministic() {
    let tmp = TempDir::new().unwrap();
    let run = train_small(tmp.path(), "run", &[]);
    for file in [
        "checkpoint.json",
        "history.csv",
        "samples.txt",
        "loss.png",
        "loss.svg",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    let history = fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(history.lines().next(), Some(HISTORY_HEADER));
    assert_eq!(history.lines().count(), 1 + 30, "one row per 10 steps");
    let samples = fs::read_to_string(run.join("samples.txt")).unwrap();
    assert!(samples.lines().all(|l| l.starts_with("step ")), "{samples}");
    assert!(samples.contains("step 300\t"), "{samples}");
    assert!(
        fs::read(run.join("loss.png"))
            .unwrap()
            .starts_with(PNG_MAGIC)
    );
    assert!(
        fs::read_to_string(run.join("loss.svg"))
            .unwrap()
            .contains("<svg")
    );
    // No temporary files left behind: the five files and best.json (the validation at the
    // last step is the run's only one, so its best).
    assert!(run.join("best.json").is_file());
    assert_eq!(fs::read_dir(&run).unwrap().count(), 6);

    let sample = |seed: &str| {
        stdout_of(
            charrnn(tmp.path())
                .args(["sample", "--checkpoint", "run", "--n", "8"])
                .args(["--seed", seed]),
        )
    };
    let a = sample("1");
    assert_eq!(a.lines().count(), 8, "{a}");
    assert!(
        a.lines().all(|l| l.chars().all(|c| c.is_ascii_lowercase())),
        "{a}"
    );
    assert_eq!(a, sample("1"), "same seed, same samples");
    assert_ne!(a, sample("2"), "another seed, other samples");

    // A checkpoint file works as well as its directory, and a prefix starts every name.
    let with_prefix = stdout_of(
        charrnn(tmp.path())
            .args(["sample", "--checkpoint", "run/checkpoint.json", "--n", "5"])
            .args(["--prefix", "Tyr", "--temperature", "0.5", "--top-k", "3"]),
    );
    assert_eq!(with_prefix.lines().count(), 5);
    assert!(
        with_prefix.lines().all(|l| l.starts_with("tyr")),
        "{with_prefix}"
    );
}

fn resume_matches_a_straight_run(dtype: &str) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let common = [
        "--hidden",
        "16",
        "--checkpoint-every",
        "100",
        "--dtype",
        dtype,
    ];
    charrnn(dir)
        .args(["train", "--steps", "400", "--out", "straight"])
        .args(common)
        .assert()
        .success();
    charrnn(dir)
        .args(["train", "--steps", "200", "--out", "resumed"])
        .args(common)
        .assert()
        .success();
    assert_eq!(checkpoint_json(&dir.join("resumed"))["state"]["step"], 200);
    charrnn(dir)
        .args([
            "train",
            "--resume",
            "resumed",
            "--steps",
            "400",
            "--checkpoint-every",
            "150",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("resuming"));
    let straight = checkpoint_json(&dir.join("straight"));
    let resumed = checkpoint_json(&dir.join("resumed"));
    assert_eq!(resumed["state"]["step"], 400);
    assert_eq!(straight["dtype"], dtype);
    assert_eq!(straight["state"]["params"], resumed["state"]["params"]);
    assert_eq!(
        straight["state"]["optimizer"],
        resumed["state"]["optimizer"]
    );
    let history = fs::read_to_string(dir.join("resumed/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 40);
}

#[test]
fn resume_f64_matches_a_straight_run() {
    resume_matches_a_straight_run("f64");
}

#[test]
fn resume_f32_matches_a_straight_run() {
    resume_matches_a_straight_run("f32");
}

#[test]
fn resume_refuses_new_configuration_and_a_step_target_not_ahead() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    let err = fails_cleanly(
        tmp.path(),
        &[
            "train", "--resume", "run", "--steps", "500", "--hidden", "8",
        ],
    );
    assert!(
        err.contains("--hidden") && err.contains("--resume"),
        "{err}"
    );
    let err = fails_cleanly(tmp.path(), &["train", "--resume", "run", "--steps", "300"]);
    assert!(err.contains("300"), "{err}");
    let err = fails_cleanly(tmp.path(), &["train", "--resume", "run"]);
    assert!(err.contains("--steps"), "{err}");
}

#[test]
fn default_run_directories_are_numbered_not_overwritten() {
    let tmp = TempDir::new().unwrap();
    for _ in 0..2 {
        charrnn(tmp.path())
            .args([
                "train",
                "--steps",
                "20",
                "--hidden",
                "8",
                "--sample-every",
                "0",
            ])
            .assert()
            .success();
    }
    let runs = tmp.path().join("runs");
    assert!(runs.join("dinosaurs/checkpoint.json").is_file());
    assert!(runs.join("dinosaurs-2/checkpoint.json").is_file());
    assert_eq!(fs::read_dir(&runs).unwrap().count(), 2);
}

#[test]
fn stream_mode_trains_samples_and_evaluates() {
    let tmp = TempDir::new().unwrap();
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    fs::write(tmp.path().join("fox.txt"), text).unwrap();
    charrnn(tmp.path())
        .args([
            "train",
            "--data",
            "fox.txt",
            "--preset",
            "min-char-rnn",
            "--hidden",
            "16",
        ])
        .args(["--steps", "60", "--checkpoint-every", "50"])
        .assert()
        .success();
    let run = tmp.path().join("runs/fox");
    assert!(run.join("checkpoint.json").is_file());
    let out = stdout_of(
        charrnn(tmp.path())
            .args([
                "sample",
                "--checkpoint",
                "runs/fox",
                "--n",
                "1",
                "--max-len",
                "30",
            ])
            .args(["--prefix", "the "]),
    );
    assert!(out.starts_with("the "), "{out}");
    assert_eq!(out.trim_end_matches('\n').chars().count(), 34, "{out:?}");
    let eval = stdout_of(charrnn(tmp.path()).args(["eval", "--checkpoint", "runs/fox"]));
    assert!(eval.contains("perplexity"), "{eval}");
}

#[test]
fn eval_reports_perplexity_in_text_and_json() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    let text = stdout_of(charrnn(tmp.path()).args(["eval", "--checkpoint", "run"]));
    for word in [
        "perplexity",
        "bits per char",
        "nats/char",
        "bundled:dinosaurs.txt",
    ] {
        assert!(text.contains(word), "{text}");
    }
    fs::write(tmp.path().join("few.txt"), "Tyrannosaurus\nStegosaurus\n").unwrap();
    let json = stdout_of(charrnn(tmp.path()).args([
        "eval",
        "--checkpoint",
        "run",
        "--data",
        "few.txt",
        "--json",
    ]));
    assert_eq!(json.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["chars"], 13 + 1 + 11 + 1);
    let (loss, ppl) = (
        v["loss_per_char"].as_f64().unwrap(),
        v["perplexity"].as_f64().unwrap(),
    );
    assert!((loss.exp() - ppl).abs() < 1e-9 && ppl > 1.0, "{v}");
}

#[test]
fn gradcheck_passes_and_names_every_parameter() {
    let tmp = TempDir::new().unwrap();
    let out = stdout_of(charrnn(tmp.path()).arg("gradcheck"));
    for name in ["w_ax", "w_aa", "w_ya", "b_a", "b_y"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(
        out.contains("worst relative error") && out.trim_end().ends_with("OK"),
        "{out}"
    );
}

#[test]
fn plots_are_png_by_default_and_svg_on_request() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    fs::remove_file(run.join("loss.png")).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["loss", "--run", "run"], "loss"),
        (
            &["hidden", "--checkpoint", "run", "--text", "tyrannosaurus"],
            "hidden",
        ),
        (
            &[
                "probs",
                "--checkpoint",
                "run/checkpoint.json",
                "--text",
                "rex",
            ],
            "probs",
        ),
        (&["gradients", "--checkpoint", "run"], "gradients"),
    ];
    for (args, kind) in cases {
        charrnn(dir).arg("plot").args(args).assert().success();
        let png = fs::read(run.join(format!("{kind}.png"))).unwrap();
        assert!(png.starts_with(PNG_MAGIC), "{kind}");
        let svg_path = dir.join(format!("{kind}-out.svg"));
        charrnn(dir)
            .arg("plot")
            .args(args)
            .args(["--format", "svg", "--out"])
            .arg(&svg_path)
            .assert()
            .success();
        let svg = fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.trim_start().starts_with("<svg") || svg.starts_with("<?xml"),
            "{kind}"
        );
    }
    let svg = fs::read_to_string(dir.join("gradients-out.svg")).unwrap();
    assert!(svg.contains("trained W_aa") && svg.contains("ρ(W_aa) = 1.5"));
    charrnn(dir)
        .args([
            "plot",
            "gradients",
            "--checkpoint",
            "run",
            "--radius",
            "0.9",
            "--format",
            "svg",
        ])
        .args(["--text", "abc"])
        .assert()
        .success();
    assert!(run.join("gradients.svg").is_file());
}

// Bad input: one line on stderr, exit code 1, nothing left behind.

#[test]
fn missing_data_file() {
    let tmp = TempDir::new().unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--data", "no-such-file.txt"]);
    assert!(err.contains("no-such-file.txt"), "{err}");
}

#[test]
fn empty_data_file() {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("empty.txt"), "").unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--data", "empty.txt"]);
    assert!(
        err.contains("empty.txt") && err.contains("no text"),
        "{err}"
    );
}

#[test]
fn data_file_of_blank_lines() {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("blank.txt"), "\n  \n\r\n\t\n").unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--data", "blank.txt"]);
    assert!(err.contains("blank.txt"), "{err}");
}

#[test]
fn data_file_with_invalid_utf8() {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("bad.txt"), b"abc\nde\xff\xfef\n").unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--data", "bad.txt"]);
    assert!(err.contains("UTF-8") && err.contains("byte 6"), "{err}");
}

#[test]
fn invalid_training_values_are_named() {
    let tmp = TempDir::new().unwrap();
    for (args, field) in [
        (&["--hidden", "0"][..], "hidden"),
        (&["--lr", "0"], "lr"),
        (&["--lr", "-1"], "lr"),
        (&["--batch", "0"], "batch"),
        (&["--clip", "0"], "clip"),
        (&["--steps", "0"], "steps"),
        (&["--val-fraction", "0.9"], "val_fraction"),
        (&["--checkpoint-every", "0"], "checkpoint_every"),
        (&["--mode", "stream", "--seq-len", "0"], "seq_len"),
    ] {
        let all: Vec<&str> = ["train"].iter().chain(args).copied().collect();
        let err = fails_cleanly(tmp.path(), &all);
        assert!(err.contains(field), "{args:?}: {err}");
    }
    // The same with an explicit --out: still nothing created.
    fails_cleanly(tmp.path(), &["train", "--hidden", "0", "--out", "new-run"]);
}

#[test]
fn a_diverging_run_fails_and_leaves_no_half_made_run() {
    let tmp = TempDir::new().unwrap();
    let err = fails_cleanly(
        tmp.path(),
        &[
            "train",
            "--lr",
            "1e308",
            "--no-clip",
            "--hidden",
            "8",
            "--out",
            "div",
        ],
    );
    assert!(err.contains("diverged at step"), "{err}");
}

#[test]
fn out_dir_with_a_run_needs_resume() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    let before = fs::read(tmp.path().join("run/checkpoint.json")).unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--out", "run", "--steps", "10"]);
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        fs::read(tmp.path().join("run/checkpoint.json")).unwrap(),
        before
    );
}

#[test]
fn bad_sampling_values() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    for (args, word) in [
        (&["--temperature", "0"][..], "temperature"),
        (&["--temperature", "-1"], "temperature"),
        (&["--temperature", "inf"], "temperature"),
        (&["--top-k", "0"], "top_k"),
        (&["--max-len", "0"], "max_len"),
    ] {
        let all: Vec<&str> = ["sample", "--checkpoint", "run"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let err = fails_cleanly(tmp.path(), &all);
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

#[test]
fn prefix_outside_the_vocabulary() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    let err = fails_cleanly(
        tmp.path(),
        &["sample", "--checkpoint", "run", "--prefix", "ab1c"],
    );
    assert!(err.contains("'1'") && err.contains("character 2"), "{err}");
}

#[test]
fn eval_data_outside_the_vocabulary() {
    let tmp = TempDir::new().unwrap();
    train_small(tmp.path(), "run", &[]);
    fs::write(tmp.path().join("odd.txt"), "abc\nd-e\n").unwrap();
    let err = fails_cleanly(
        tmp.path(),
        &["eval", "--checkpoint", "run", "--data", "odd.txt"],
    );
    assert!(
        err.contains("odd.txt") && err.contains("'-'") && err.contains("character 5"),
        "{err}"
    );
}

#[test]
fn corrupt_checkpoint() {
    let tmp = TempDir::new().unwrap();
    fs::create_dir(tmp.path().join("run")).unwrap();
    fs::write(
        tmp.path().join("run/checkpoint.json"),
        b"\x00\x9f garbage {[",
    )
    .unwrap();
    for cmd in [
        &["sample", "--checkpoint", "run"][..],
        &["eval", "--checkpoint", "run/checkpoint.json"],
        &["train", "--resume", "run", "--steps", "10"],
        &["plot", "hidden", "--checkpoint", "run", "--text", "a"],
    ] {
        let err = fails_cleanly(tmp.path(), cmd);
        assert!(
            err.contains("checkpoint.json") && err.contains("not a valid checkpoint"),
            "{err}"
        );
    }
    let err = fails_cleanly(tmp.path(), &["sample", "--checkpoint", "nowhere"]);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn checkpoint_whose_shapes_disagree_with_its_vocabulary() {
    let tmp = TempDir::new().unwrap();
    let run = train_small(tmp.path(), "run", &[]);
    let mut ckpt = checkpoint_json(&run);
    ckpt["state"]["params"]["w_ya"] = serde_json::json!({
        "v": 1,
        "dim": [5, 16],
        "data": vec![0.0; 5 * 16],
    });
    fs::write(run.join("checkpoint.json"), ckpt.to_string()).unwrap();
    for cmd in [
        &["sample", "--checkpoint", "run"][..],
        &["eval", "--checkpoint", "run"],
        &["train", "--resume", "run", "--steps", "400"],
    ] {
        let err = fails_cleanly(tmp.path(), cmd);
        assert!(err.contains("inconsistent checkpoint"), "{err}");
    }
}

#[test]
fn usage_errors_keep_clap_exit_code() {
    let tmp = TempDir::new().unwrap();
    charrnn(tmp.path())
        .args(["train", "--clip", "1", "--no-clip"])
        .assert()
        .code(2);
    charrnn(tmp.path())
        .args(["train", "--optimizer", "rmsprop"])
        .assert()
        .code(2);
    assert_eq!(listing(tmp.path()), Vec::<PathBuf>::new());
}

/// `charrnn bench` names the tier it ran at, and `RNN_ISA` chooses it: a lower tier is
/// followed, a name that is not a tier falls back with a message.
#[test]
fn bench_reports_the_tier_rnn_isa_chose() {
    let dir = tempfile::tempdir().unwrap();
    let run = |isa: &str| {
        let output = common::charrnn(dir.path())
            .env("RNN_ISA", isa)
            .args(["bench", "--config", "a", "--steps", "3", "--gemm-n", "64"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
        (
            stdout,
            stderr,
            json["tier"].as_str().unwrap_or("").to_string(),
        )
    };
    let (stdout, stderr, tier) = run("portable");
    assert_eq!(tier, "portable");
    assert!(stdout.contains("portable tier"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
    let (_, stderr, tier) = run("sse9");
    assert!(
        stderr.contains("RNN_ISA=sse9 is not a tier (expected avx512, avx2 or portable)"),
        "{stderr}"
    );
    assert!(
        ["avx512", "avx2", "portable"].contains(&tier.as_str()),
        "{tier}"
    );
}

/// Sizes that would allocate gigabytes or run for hours are refused with the flag and value
/// named, before anything is allocated.
#[test]
fn bench_and_gradcheck_refuse_huge_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["bench", "--threads", "10000"],
            "invalid threads = 10000: expected between 1 and 256",
        ),
        (
            &["bench", "--gemm-n", "0"],
            "invalid gemm-n = 0: expected between 1 and 4096",
        ),
        (
            &["bench", "--gemm-n", "100000"],
            "invalid gemm-n = 100000: expected between 1 and 4096",
        ),
        (
            &["gradcheck", "--hidden", "100000"],
            "invalid hidden = 100000: expected between 1 and 512",
        ),
        (
            &["gradcheck", "--vocab", "0"],
            "invalid vocab = 0: expected between 1 and 512",
        ),
    ];
    for (args, want) in cases {
        let stderr = common::fails_cleanly(dir.path(), args);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
