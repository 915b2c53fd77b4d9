//! `charrnn export` and `charrnn import` end to end: the round trip is byte-identical, and
//! files that cannot be imported give one clear line and exit code 1.

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use tempfile::TempDir;

mod common;
use common::{charrnn, fails_cleanly};

/// A small run on the bundled names into `dir/name`.
fn train_small(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    charrnn(dir)
        .args(["train", "--steps", "100", "--checkpoint-every", "100"])
        .args(["--hidden", "8", "--sample-every", "0", "--out"])
        .arg(&out)
        .args(extra)
        .assert()
        .success();
    out
}

fn export(dir: &Path, checkpoint: &Path, out: &str) -> Vec<u8> {
    charrnn(dir)
        .args(["export", "--checkpoint"])
        .arg(checkpoint)
        .args(["--out", out])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("wrote {out}")));
    fs::read(dir.join(out)).unwrap()
}

/// A safetensors file taken apart: its JSON header and its data.
fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

#[test]
fn export_import_export_is_byte_identical_in_both_dtypes() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    for dtype in ["f64", "f32"] {
        let run = train_small(dir, &format!("run-{dtype}"), &["--dtype", dtype]);
        let first = export(dir, &run, &format!("{dtype}.safetensors"));
        // Into a run directory (created), and into a named .json file.
        let imported = dir.join(format!("imported-{dtype}"));
        charrnn(dir)
            .arg("import")
            .arg(format!("{dtype}.safetensors"))
            .arg("--out")
            .arg(&imported)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("({dtype}, n_a 8")));
        let json = format!("{dtype}.json");
        charrnn(dir)
            .args(["import", &format!("{dtype}.safetensors"), "--out", &json])
            .assert()
            .success();
        let again = export(dir, &imported, &format!("{dtype}-again.safetensors"));
        assert_eq!(first, again, "{dtype}: export → import → export differs");
        let from_json = export(dir, &dir.join(&json), &format!("{dtype}-json.safetensors"));
        assert_eq!(first, from_json);
        // The imported checkpoint is a working model: it samples as the original does.
        let sample = |ckpt: &Path| {
            let out = charrnn(dir)
                .args(["sample", "--n", "5", "--seed", "3", "--checkpoint"])
                .arg(ckpt)
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        };
        assert_eq!(sample(&run), sample(&imported), "{dtype}");
        // No temporary files next to the outputs.
        assert!(
            fs::read_dir(dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-"))
        );
    }
}

#[test]
fn an_imported_checkpoint_resumes_and_evaluates_with_data() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    export(dir, &run, "m.safetensors");
    let data = dir.join("names.txt");
    let names = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/dinosaurs.txt");
    fs::copy(names, &data).unwrap();
    charrnn(dir)
        .args(["import", "m.safetensors", "--out", "plain"])
        .assert()
        .success();
    // Without --data the training text is unknown, and the error says what to do.
    let err = fails_cleanly(dir, &["eval", "--checkpoint", "plain"]);
    assert!(
        err.contains("m.safetensors") && err.contains("--data"),
        "{err}"
    );
    charrnn(dir)
        .args(["eval", "--checkpoint", "plain", "--data"])
        .arg(&data)
        .assert()
        .success();
    charrnn(dir)
        .args(["import", "m.safetensors", "--out", "with-data", "--data"])
        .arg(&data)
        .assert()
        .success();
    charrnn(dir)
        .args(["train", "--resume", "with-data", "--steps", "120"])
        .assert()
        .success()
        .stdout(predicate::str::contains("resuming with-data at step 100"));
}

#[test]
fn import_never_replaces_a_checkpoint() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    export(dir, &run, "m.safetensors");
    let before = fs::read(run.join("checkpoint.json")).unwrap();
    let err = fails_cleanly(dir, &["import", "m.safetensors", "--out", "run"]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails_cleanly(
        dir,
        &["import", "m.safetensors", "--out", "run/checkpoint.json"],
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read(run.join("checkpoint.json")).unwrap(), before);
}

#[test]
fn files_that_cannot_be_imported_are_named_in_one_line() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    let good = export(dir, &run, "good.safetensors");
    let (header, data) = split(&good);

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"not a safetensors file at all".to_vec(),
            "not a valid safetensors file",
        ),
        ("empty", Vec::new(), "not a valid safetensors file"),
        (
            "truncated",
            good[..good.len() - 5].to_vec(),
            "not a valid safetensors file",
        ),
    ];
    // A tensor renamed away: missing.
    let mut h = header.clone();
    let t = h.as_object_mut().unwrap().remove("fc.bias").unwrap();
    h["fc.bias_renamed"] = t;
    cases.push(("missing", join(&h, &data), "missing tensor fc.bias"));
    // W_ih transposed (same bytes, wrong shape).
    let mut h = header.clone();
    h["rnn.weight_ih_l0"]["shape"] = serde_json::json!([27, 8]);
    cases.push((
        "shape",
        join(&h, &data),
        "tensor rnn.weight_ih_l0 has shape [27, 8], expected [8, 27]",
    ));
    // 64-bit integers: same size, a dtype the model cannot use.
    let mut h = header.clone();
    h["fc.weight"]["dtype"] = serde_json::json!("I64");
    cases.push(("dtype", join(&h, &data), "tensor fc.weight has dtype I64"));
    // A batch no run could use (the carried state would be n_a x 10^15).
    let mut h = header.clone();
    let meta = h["__metadata__"]["rnn"].as_str().unwrap().to_string();
    let mut info: serde_json::Value = serde_json::from_str(&meta).unwrap();
    info["config"]["batch"] = serde_json::json!(1_000_000_000_000_000u64);
    h["__metadata__"]["rnn"] = serde_json::json!(info.to_string());
    cases.push((
        "config",
        join(&h, &data),
        "invalid batch = 1000000000000000",
    ));
    // No "rnn" metadata: the vocabulary is unknown.
    let mut h = header.clone();
    h.as_object_mut().unwrap().remove("__metadata__");
    cases.push(("metadata", join(&h, &data), "\"rnn\" metadata"));

    for (name, bytes, expected) in cases {
        let file = format!("{name}.safetensors");
        fs::write(dir.join(&file), bytes).unwrap();
        let err = fails_cleanly(dir, &["import", &file, "--out", name]);
        assert!(err.contains(&file), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!dir.join(name).exists(), "{name}: created --out");
    }
    let err = fails_cleanly(dir, &["import", "absent.safetensors", "--out", "x"]);
    assert!(err.contains("cannot read absent.safetensors"), "{err}");
}

#[test]
fn export_errors_name_the_file() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    fs::write(dir.join("file"), "").unwrap();
    let run_arg = run.to_str().unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "export",
            "--checkpoint",
            run_arg,
            "--out",
            "file/m.safetensors",
        ],
    );
    assert!(
        err.contains("--out file/m.safetensors: file is a regular file, not a directory"),
        "{err}"
    );
    let err = fails_cleanly(dir, &["export", "--checkpoint", run_arg, "--out", "run"]);
    assert!(err.contains("--out run: is a directory"), "{err}");
    let err = fails_cleanly(
        dir,
        &[
            "export",
            "--checkpoint",
            "nowhere",
            "--out",
            "m.safetensors",
        ],
    );
    assert!(err.contains("nowhere"), "{err}");
    assert!(!dir.join("m.safetensors").exists());
}

#[test]
fn probs_prints_one_row_per_step_that_sums_to_one() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = train_small(dir, "run", &[]);
    let out = charrnn(dir)
        .args(["probs", "--json", "--text", "Rex", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "rex", "lowercased as in training");
    assert_eq!(
        v["inputs"][0],
        serde_json::Value::Null,
        "names start from no input"
    );
    let rows = v["probs"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 27);
        let sum: f64 = row.iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
    }
    let run_arg = run.to_str().unwrap();
    let err = fails_cleanly(
        dir,
        &["probs", "--json", "--checkpoint", run_arg, "--text", "R2"],
    );
    assert!(err.contains("vocabulary"), "{err}");
    // Hidden from help: a tool for `cargo xtask interop`, not part of the everyday CLI.
    charrnn(dir)
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("export").and(predicate::str::contains("probs").not()));
}
