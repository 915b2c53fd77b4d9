//! Crash-proof training: `charrnn train` killed with SIGKILL at random moments always leaves
//! a loadable checkpoint that `--resume` continues from; an unwritable output or a full disk
//! gives one clear line and keeps the last good checkpoint.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_engine::Checkpoint;
use tempfile::TempDir;

mod common;
use common::{charrnn, fails_cleanly};

/// The step of the checkpoint in `run`, which must load.
fn saved_step(run: &Path) -> u64 {
    let path = run.join("checkpoint.json");
    match Checkpoint::load(&path) {
        Ok(c) => c.state.step,
        Err(e) => panic!("{} does not load: {e:?}", path.display()),
    }
}

/// Temporary files left in `dir` (by killed processes).
fn temporaries(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count()
}

/// Number of SIGKILLs; each lands at a moment drawn from a seeded generator.
const KILLS: usize = 30;

#[test]
fn sigkill_at_random_moments_always_leaves_a_checkpoint_that_resumes() {
    use std::os::unix::process::ExitStatusExt;

    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = dir.join("run");
    let log = dir.join("stderr.log");
    // A first checkpoint (step 5), then resumed runs that are killed. n_a = 64 and a
    // checkpoint (with fsync) every 5 steps: a few milliseconds per checkpoint, so the kills
    // land during start-up, during training and during saves.
    charrnn(dir)
        .args(["train", "--out", "run", "--hidden", "64", "--seed", "3"])
        .args([
            "--steps",
            "5",
            "--checkpoint-every",
            "5",
            "--sample-every",
            "0",
        ])
        .assert()
        .success();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let started = Instant::now();
    let mut steps = vec![saved_step(&run)];
    for kill in 0..KILLS {
        let mut child = StdCommand::new(cargo_bin("charrnn"))
            .current_dir(dir)
            .args(["train", "--resume", "run", "--steps", "100000000"])
            .args(["--checkpoint-every", "5"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(5..300)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "kill {kill}: charrnn stopped by itself ({status}): {}",
            fs::read_to_string(&log).unwrap()
        );
        // Always a loadable checkpoint, never older than the last one seen.
        let step = saved_step(&run);
        let last = *steps.last().unwrap();
        assert!(
            step >= last,
            "kill {kill}: step went back from {last} to {step}"
        );
        steps.push(step);
    }
    let last = *steps.last().unwrap();
    assert!(
        last > steps[0],
        "resuming after kills made no progress: {steps:?}"
    );
    // The survivor samples and resumes to the end; leftover temporary files of killed
    // processes are harmless.
    charrnn(dir)
        .args(["sample", "--checkpoint", "run", "--n", "3"])
        .assert()
        .success();
    let target = (last + 10).to_string();
    charrnn(dir)
        .args(["train", "--resume", "run", "--steps", &target])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "resuming run at step {last}"
        )));
    assert_eq!(saved_step(&run), last + 10);
    eprintln!(
        "{KILLS} kills in {:.1} s, a loadable checkpoint after each, steps {} .. {last}, \
         {} temporary files left by killed saves",
        started.elapsed().as_secs_f64(),
        steps[0],
        temporaries(&run)
    );
}

/// A finished 10-step run in `dir/run`.
fn short_run(dir: &Path) -> PathBuf {
    charrnn(dir)
        .args([
            "train",
            "--steps",
            "10",
            "--checkpoint-every",
            "5",
            "--hidden",
            "8",
        ])
        .args(["--sample-every", "0", "--out", "run"])
        .assert()
        .success();
    dir.join("run")
}

#[test]
fn an_out_dir_under_a_regular_file_is_refused_in_one_line() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("file"), "").unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "train", "--steps", "10", "--hidden", "8", "--out", "file/run",
        ],
    );
    assert!(err.contains("file/run"), "{err}");
}

#[test]
fn an_unwritable_history_is_refused_before_training() {
    // A directory in place of history.csv cannot be written: the output policy refuses it
    // before the first step, and the checkpoint stays as it was.
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = short_run(dir);
    fs::remove_file(run.join("history.csv")).unwrap();
    fs::create_dir_all(run.join("history.csv/blocker")).unwrap();
    let before = fs::read(run.join("checkpoint.json")).unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "20",
            "--checkpoint-every",
            "5",
        ],
    );
    assert!(err.contains("run/history.csv: is a directory"), "{err}");
    assert_eq!(fs::read(run.join("checkpoint.json")).unwrap(), before);
    assert_eq!(temporaries(&run), 0);
}

#[test]
fn an_unwritable_checkpoint_path_keeps_the_previous_checkpoint() {
    // A run resumed from a copy of its checkpoint saves to run/checkpoint.json; a directory
    // there is refused before training. The copy it started from is untouched.
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let run = short_run(dir);
    fs::rename(run.join("checkpoint.json"), run.join("saved.json")).unwrap();
    fs::create_dir_all(run.join("checkpoint.json/blocker")).unwrap();
    let before = fs::read(run.join("saved.json")).unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "train",
            "--resume",
            "run/saved.json",
            "--steps",
            "20",
            "--checkpoint-every",
            "5",
        ],
    );
    assert!(err.contains("run/checkpoint.json: is a directory"), "{err}");
    assert_eq!(fs::read(run.join("saved.json")).unwrap(), before);
    assert_eq!(temporaries(&run), 0);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`, or returns `None` where that is not allowed
    /// (not root, or no mount permission in a container).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_checkpoint() {
    let tmp = TempDir::new().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), "64k") else {
        eprintln!("cannot mount a tmpfs here (needs root): full-disk test not run");
        return;
    };
    let dir = &disk.0;
    // Checkpoints grow with the history (about 15 bytes a step at n_a = 8) until the
    // 64 KiB disk cannot hold the old checkpoint and the new one's temporary file.
    let err = fails_cleanly(
        dir,
        &[
            "train",
            "--steps",
            "100000000",
            "--hidden",
            "8",
            "--checkpoint-every",
            "50",
            "--sample-every",
            "0",
            "--out",
            "run",
        ],
    );
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    assert!(err.contains("run/"), "{err}");
    let run = dir.join("run");
    let step = saved_step(&run);
    assert!(step > 0 && step.is_multiple_of(50), "{step}");
    assert_eq!(temporaries(&run), 0, "{err}");
    eprintln!("disk full after step {step}: {}", err.trim_end());
}
