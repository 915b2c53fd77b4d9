//! The rough edges a hostile session found in `charrnn`, one test each: each failed before
//! its fix.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

mod common;
use common::{charrnn, fails_cleanly};

/// A tiny run on the bundled names: n_a 8, `steps` steps, a checkpoint every 10.
fn tiny_run(dir: &Path, name: &str, steps: &str) -> PathBuf {
    charrnn(dir)
        .args(["train", "--hidden", "8", "--steps", steps])
        .args([
            "--checkpoint-every",
            "10",
            "--sample-every",
            "0",
            "--out",
            name,
        ])
        .assert()
        .success();
    dir.join(name)
}

#[test]
fn stream_mode_works_from_the_names_preset() {
    // Once "invalid seq_len = 0", a flag the user never gave.
    let tmp = TempDir::new().unwrap();
    let out = charrnn(tmp.path())
        .args(["train", "--mode", "stream", "--hidden", "8", "--steps", "3"])
        .args(["--sample-every", "0", "--out", "s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 streams x 64 chars"), "{stdout}");
}

#[test]
fn a_cause_is_printed_once() {
    // Once "... (os error 2): No such file or directory (os error 2)".
    let tmp = TempDir::new().unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--data", "absent.txt"]);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert!(err.contains("absent.txt"), "{err}");
}

#[test]
fn a_checkpoint_with_wrong_content_names_no_fake_position() {
    // Once "(line 0, column 0)" for JSON that parses but lacks a field.
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("c.json"), r#"{"format_version": 1}"#).unwrap();
    let err = fails_cleanly(tmp.path(), &["sample", "--checkpoint", "c.json"]);
    assert!(!err.contains("line 0"), "{err}");
    assert!(err.contains("missing field"), "{err}");
    // A syntax error still gives its position, once.
    fs::write(
        tmp.path().join("d.json"),
        "{\n  \"format_version\": 1,\n  oops",
    )
    .unwrap();
    let err = fails_cleanly(tmp.path(), &["sample", "--checkpoint", "d.json"]);
    assert!(err.contains("(line 3, column"), "{err}");
    assert_eq!(err.matches("line 3").count(), 1, "{err}");
}

#[test]
fn a_checkpoint_whose_dtype_disagrees_with_its_configuration_is_refused() {
    let tmp = TempDir::new().unwrap();
    let run = tiny_run(tmp.path(), "r", "10");
    let path = run.join("checkpoint.json");
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(r#"{"format_version":1,"dtype":"f64""#),
        "{}",
        &text[..60]
    );
    let changed = text.replacen(r#""dtype":"f64""#, r#""dtype":"f32""#, 1);
    fs::write(&path, changed).unwrap();
    let err = fails_cleanly(tmp.path(), &["eval", "--checkpoint", "r"]);
    assert!(
        err.contains("element type f32 in the header, f64 in the configuration"),
        "{err}"
    );
}

#[test]
fn a_names_prefix_cannot_hold_a_newline() {
    let tmp = TempDir::new().unwrap();
    tiny_run(tmp.path(), "r", "10");
    let err = fails_cleanly(
        tmp.path(),
        &["sample", "--checkpoint", "r", "--prefix", "ab\ncd"],
    );
    assert!(err.contains("--prefix") && err.contains("newline"), "{err}");
}

#[test]
fn an_image_path_must_say_png_or_svg() {
    // Once: `--out x.jpg` wrote PNG bytes into x.jpg.
    let tmp = TempDir::new().unwrap();
    tiny_run(tmp.path(), "r", "10");
    let err = fails_cleanly(
        tmp.path(),
        &["plot", "loss", "--run", "r", "--out", "x.jpg"],
    );
    assert!(
        err.contains("x.jpg") && err.contains(".png or .svg"),
        "{err}"
    );
    let err = fails_cleanly(
        tmp.path(),
        &[
            "plot", "loss", "--run", "r", "--out", "x.svg", "--format", "png",
        ],
    );
    assert!(err.contains("disagrees"), "{err}");
    assert!(!tmp.path().join("x.jpg").exists() && !tmp.path().join("x.svg").exists());
}

#[test]
fn resuming_on_other_data_says_so() {
    let tmp = TempDir::new().unwrap();
    tiny_run(tmp.path(), "r", "10");
    fs::write(tmp.path().join("other.txt"), "abc\nbca\ncab\n".repeat(20)).unwrap();
    let out = charrnn(tmp.path())
        .args([
            "train",
            "--resume",
            "r",
            "--steps",
            "20",
            "--data",
            "other.txt",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("note: the run was trained on bundled:dinosaurs.txt and continues on"),
        "{stdout}"
    );
}

#[test]
fn a_checkpoint_does_not_grow_with_the_steps_and_holds_no_clock() {
    let tmp = TempDir::new().unwrap();
    let run = tiny_run(tmp.path(), "r", "20");
    let size_20 = fs::metadata(run.join("checkpoint.json")).unwrap().len();
    let text = fs::read_to_string(run.join("checkpoint.json")).unwrap();
    assert!(!text.contains("\"history\"") && !text.contains("chars_per_s"));
    // Two identical resumes from copies of one checkpoint: byte-identical checkpoints.
    let copy = tmp.path().join("r2");
    fs::create_dir(&copy).unwrap();
    fs::copy(run.join("checkpoint.json"), copy.join("checkpoint.json")).unwrap();
    for dir in ["r", "r2"] {
        charrnn(tmp.path())
            .args(["train", "--resume", dir, "--steps", "400"])
            .assert()
            .success();
    }
    let a = fs::read(run.join("checkpoint.json")).unwrap();
    let b = fs::read(copy.join("checkpoint.json")).unwrap();
    assert!(a == b, "two identical resumes wrote different checkpoints");
    // 20 times the steps, about the same size (the numbers' digits vary a little).
    let size_400 = a.len() as u64;
    assert!(size_400 < size_20 + size_20 / 10, "{size_20} -> {size_400}");
    // The history is all in history.csv: 40 rows under one header.
    let history = fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 40, "{history}");
}

#[test]
fn a_finite_blow_up_stops_as_diverged_and_leaves_nothing() {
    // Once: `--lr 1e300` printed 300-digit losses and exited 0.
    let tmp = TempDir::new().unwrap();
    let err = fails_cleanly(
        tmp.path(),
        &[
            "train", "--lr", "1e300", "--steps", "50", "--hidden", "8", "--out", "big",
        ],
    );
    assert!(err.contains("training diverged at step"), "{err}");
    assert!(err.contains("no checkpoint was written"), "{err}");
    assert!(!tmp.path().join("big").exists());
    // A resumed run that blows up keeps its last checkpoint as it was.
    let run = tiny_run(tmp.path(), "r", "10");
    let mut ckpt: serde_json::Value =
        serde_json::from_slice(&fs::read(run.join("checkpoint.json")).unwrap()).unwrap();
    ckpt["state"]["optimizer"]["config"]["lr"] = serde_json::json!(1e300);
    ckpt["state"]["config"]["optimizer"]["lr"] = serde_json::json!(1e300);
    let bytes = serde_json::to_vec(&ckpt).unwrap();
    fs::write(run.join("checkpoint.json"), &bytes).unwrap();
    let err = fails_cleanly(tmp.path(), &["train", "--resume", "r", "--steps", "100"]);
    assert!(
        err.contains("diverged") && err.contains("last checkpoint (step 10)"),
        "{err}"
    );
    assert_eq!(fs::read(run.join("checkpoint.json")).unwrap(), bytes);
}

#[test]
fn eval_with_nothing_to_predict_is_an_error() {
    // Once "loss 0.0000, perplexity 1.0000" and exit 0.
    let tmp = TempDir::new().unwrap();
    charrnn(tmp.path())
        .args([
            "train",
            "--mode",
            "stream",
            "--seq-len",
            "8",
            "--hidden",
            "8",
        ])
        .args(["--steps", "3", "--sample-every", "0", "--out", "s"])
        .assert()
        .success();
    fs::write(tmp.path().join("one.txt"), "a").unwrap();
    let err = fails_cleanly(
        tmp.path(),
        &["eval", "--checkpoint", "s", "--data", "one.txt"],
    );
    assert!(err.contains("one.txt: nothing to predict"), "{err}");
}

#[test]
fn the_cli_readme_describes_every_command() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("crates/rnn-cli/README.md");
    let help = charrnn(Path::new(".")).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 8, "{help}");
    for c in commands {
        assert!(readme.contains(&format!("`{c}")), "README lacks `{c}`");
    }
}
