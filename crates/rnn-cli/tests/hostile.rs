//! Hostile inputs for every subcommand: files, flags, checkpoints, safetensors, output
//! targets, concurrency and signals.
//!
//! Each case runs `charrnn` in a fresh directory holding copies of shared fixtures (a small
//! names run, a small f32 stream run, an exported model, texts, an unrelated file), plus
//! what the case sets up (damaged files, FIFOs, links, directories). Every file in the
//! directory is recorded before the run and compared after it. Then:
//!
//! - a bad input exits 1 with exactly one line on stderr, `error: ...`, naming the problem
//!   (usage errors found by the argument parser keep its exit code 2 and its hint lines);
//!   nothing in the directory changes and nothing new appears;
//! - a valid edge case exits 0, and only the files it is meant to write change;
//! - no case panics, aborts, dies by a signal, hangs, or prints a non-finite number.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use rnn_engine::Checkpoint;
use serde_json::{Value, json};
use tempfile::TempDir;

/// The longest a case may run before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Fixtures

/// Fixtures made once per test binary: `run/` (names, f64, n_a 8, finished at step 10),
/// `s32/` (stream, f32, trained on text.txt), `model.safetensors` (run/ exported), texts.
fn fixture() -> &'static Path {
    static FIXTURE: OnceLock<TempDir> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let tmp =
                TempDir::with_prefix_in("hostile-fixture-", env!("CARGO_TARGET_TMPDIR")).unwrap();
            let d = tmp.path();
            let text = "the quick brown fox jumps over the lazy dog.\n".repeat(20);
            fs::write(d.join("text.txt"), text).unwrap();
            let names: String = (0..40)
                .map(|i| format!("name{}\n", "abc".repeat(i % 5 + 1)))
                .collect();
            fs::write(d.join("names.txt"), names).unwrap();
            fs::write(d.join("notes.txt"), "precious\n").unwrap();
            fs::write(d.join("notes.png"), "not a picture\n").unwrap();
            fs::write(d.join("notes.json"), "{}\n").unwrap();
            fs::create_dir(d.join("adir")).unwrap();
            fs::create_dir(d.join("adir.png")).unwrap();
            must(
                d,
                &["train", "--out", "run", "--hidden", "8", "--steps", "10"],
                &["--checkpoint-every", "5", "--sample-every", "0"],
            );
            must(
                d,
                &[
                    "train", "--data", "text.txt", "--mode", "stream", "--out", "s32",
                ],
                &[
                    "--hidden",
                    "8",
                    "--steps",
                    "10",
                    "--seq-len",
                    "8",
                    "--batch",
                    "2",
                    "--dtype",
                    "f32",
                    "--sample-every",
                    "0",
                ],
            );
            must(
                d,
                &[
                    "export",
                    "--checkpoint",
                    "run",
                    "--out",
                    "model.safetensors",
                ],
                &[],
            );
            tmp
        })
        .path()
}

fn must(dir: &Path, args: &[&str], more: &[&str]) {
    let out = Command::new(cargo_bin("charrnn"))
        .current_dir(dir)
        .args(args)
        .args(more)
        .output()
        .unwrap();
    assert!(out.status.success(), "fixture {args:?}: {out:?}");
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Setup helpers (each takes the case directory)

fn write(d: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let path = d.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

fn fifo(d: &Path, rel: &str) {
    let status = Command::new("mkfifo").arg(d.join(rel)).status().unwrap();
    assert!(status.success(), "mkfifo {rel}");
}

fn link(d: &Path, rel: &str, target: &str) {
    std::os::unix::fs::symlink(target, d.join(rel)).unwrap();
}

/// `rel` gets run/checkpoint.json as JSON, changed by `edit`.
fn ckpt(d: &Path, rel: &str, edit: impl FnOnce(&mut Value)) {
    let mut value: Value =
        serde_json::from_slice(&fs::read(d.join("run/checkpoint.json")).unwrap()).unwrap();
    edit(&mut value);
    write(d, rel, serde_json::to_vec(&value).unwrap());
}

/// `rel` gets the bytes of `from`, changed by `edit`.
fn bytes_of(d: &Path, from: &str, rel: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let bytes = fs::read(d.join(from)).unwrap();
    write(d, rel, edit(bytes));
}

/// model.safetensors taken apart: its JSON header and its data.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// `bad.safetensors` from model.safetensors with its header and data changed by `edit`.
fn st(d: &Path, edit: impl FnOnce(&mut Value, &mut Vec<u8>)) {
    let (mut header, mut data) = split(&fs::read(d.join("model.safetensors")).unwrap());
    edit(&mut header, &mut data);
    write(d, "bad.safetensors", join(&header, &data));
}

/// The "rnn" metadata entry of a safetensors header, parsed, changed by `edit`, put back.
fn st_meta(header: &mut Value, edit: impl FnOnce(&mut Value)) {
    let raw = header["__metadata__"]["rnn"].as_str().unwrap().to_string();
    let mut meta: Value = serde_json::from_str(&raw).unwrap();
    edit(&mut meta);
    header["__metadata__"]["rnn"] = json!(meta.to_string());
}

/// A thread that writes `text` into the FIFO `rel` once a reader opens it.
fn fifo_writer(d: &Path, rel: &str, text: String) {
    fifo(d, rel);
    let path = d.join(rel);
    std::thread::spawn(move || {
        if let Ok(mut f) = fs::OpenOptions::new().write(true).open(path) {
            let _ = f.write_all(text.as_bytes());
        }
    });
}

/// A step that prepares or checks the files of a case directory.
type Step = fn(&Path);

fn nothing(_: &Path) {}

// ---------------------------------------------------------------------------------------
// Checks of files a valid case writes

fn loads(path: &Path) {
    if let Err(e) = Checkpoint::load(path) {
        panic!("{} does not load: {e}", path.display());
    }
}

fn is_png(path: &Path) {
    let bytes = fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
}

fn is_svg(path: &Path) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains("<svg"), "{} is not an SVG", path.display());
}

fn is_safetensors(path: &Path) {
    let bytes = fs::read(path).unwrap();
    let (header, _) = split(&bytes);
    assert!(header.get("fc.bias").is_some(), "{}", path.display());
}

// ---------------------------------------------------------------------------------------
// Cases

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Exit 1, one line "error: ..." holding this text.
    Fail(&'static str),
    /// The argument parser's refusal: exit 2, first line "error: ..." holding this text.
    Usage(&'static str),
    /// Exit 0, stdout holding this text.
    Ok(&'static str),
}

struct Case {
    name: String,
    args: Vec<String>,
    setup: fn(&Path),
    expect: Expect,
    /// Pre-existing paths the case may change, each checked by `check` afterwards.
    changes: Vec<(&'static str, Step)>,
}

fn case(name: &str, args: &[&str], expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        setup: nothing,
        expect,
        changes: Vec::new(),
    }
}

impl Case {
    fn setup(mut self, f: fn(&Path)) -> Self {
        self.setup = f;
        self
    }

    fn changes(mut self, rel: &'static str, check: fn(&Path)) -> Self {
        self.changes.push((rel, check));
        self
    }
}

use Expect::{Fail, Ok as Valid, Usage};

/// What a path was: a regular file's bytes, a directory, a link's target, or another kind.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>, u32),
    Dir,
    Link(PathBuf),
    Fifo,
    Other,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut map = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let e = if ft.is_symlink() {
                Entry::Link(fs::read_link(&path).unwrap())
            } else if ft.is_dir() {
                stack.push(path.clone());
                Entry::Dir
            } else if ft.is_file() {
                Entry::File(fs::read(&path).unwrap(), meta.permissions().mode())
            } else if ft.is_fifo() {
                Entry::Fifo
            } else {
                Entry::Other
            };
            map.insert(rel, e);
        }
    }
    map
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Waits for `child` at most `TIMEOUT`; a child still running then is killed and reported.
fn wait(child: &mut Child, what: &str) -> Result<ExitStatus, String> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: still running after {TIMEOUT:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_charrnn(dir: &Path, logs: &Path, args: &[String]) -> Result<Run, String> {
    let out = logs.join("stdout");
    let err = logs.join("stderr");
    let mut child = Command::new(cargo_bin("charrnn"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait(&mut child, &format!("{args:?}"))?;
    Ok(Run {
        status,
        stdout: String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err).unwrap()).into_owned(),
    })
}

/// A word of `text` that is a printed non-finite number.
fn non_finite(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric()))
        .find(|w| matches!(w.to_ascii_lowercase().as_str(), "nan" | "inf" | "infinity"))
}

fn run_case(c: &Case) -> Result<(), String> {
    let tmp = TempDir::with_prefix_in("hostile-", env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path().join("case");
    let logs = tmp.path().join("logs");
    fs::create_dir(&logs).unwrap();
    copy_tree(fixture(), &dir);
    (c.setup)(&dir);
    let before = snapshot(&dir);
    let r = run_charrnn(&dir, &logs, &c.args)?;
    let after = snapshot(&dir);
    let said = format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        r.status.code(),
        r.stdout.chars().take(2000).collect::<String>(),
        r.stderr
    );
    let code = r
        .status
        .code()
        .ok_or_else(|| format!("died by a signal (abort?): {}\n{said}", r.status))?;
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if r.stderr.contains(bad) || r.stdout.contains(bad) {
            return Err(format!("{bad}\n{said}"));
        }
    }
    if let Some(word) = non_finite(&r.stdout) {
        return Err(format!("printed a non-finite number {word:?}\n{said}"));
    }
    let first = r.stderr.lines().next().unwrap_or("");
    match c.expect {
        Fail(text) | Usage(text) => {
            let want = if matches!(c.expect, Fail(_)) { 1 } else { 2 };
            if code != want {
                return Err(format!("expected exit {want}\n{said}"));
            }
            let named = if want == 1 {
                first.contains(text)
            } else {
                r.stderr.contains(text)
            };
            if !first.starts_with("error: ") || !named {
                return Err(format!("expected one line \"error: ...{text}...\"\n{said}"));
            }
            if want == 1 && r.stderr.trim_end().lines().count() != 1 {
                return Err(format!("expected exactly one line on stderr\n{said}"));
            }
        }
        Valid(text) => {
            if code != 0 || !r.stdout.contains(text) {
                return Err(format!(
                    "expected exit 0 and stdout holding {text:?}\n{said}"
                ));
            }
            if r.stderr.contains("error") {
                return Err(format!("an error on stderr of a valid case\n{said}"));
            }
        }
    }
    // Every pre-existing path is as it was, unless the case may change it.
    for (rel, was) in &before {
        let allowed = c.changes.iter().any(|(p, _)| Path::new(p) == rel);
        match after.get(rel) {
            Some(now) if now == was => {}
            _ if allowed => {}
            Some(_) => return Err(format!("{} changed\n{said}", rel.display())),
            None => return Err(format!("{} was removed\n{said}", rel.display())),
        }
    }
    for (rel, check) in &c.changes {
        let path = dir.join(rel);
        if fs::symlink_metadata(&path).is_ok() {
            let result = std::panic::catch_unwind(|| check(&path));
            if result.is_err() {
                return Err(format!("{rel}: the file written is not valid\n{said}"));
            }
        } else {
            return Err(format!("{rel} is missing after the run\n{said}"));
        }
    }
    // A failed command leaves nothing behind.
    if !matches!(c.expect, Valid(_)) {
        let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        if !new.is_empty() {
            return Err(format!("a failed command left {new:?}\n{said}"));
        }
    }
    Ok(())
}

fn run_all(group: &str, cases: Vec<Case>) {
    let started = Instant::now();
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
        if let Err(e) = run_case(c) {
            failures.push(format!("[{}] charrnn {}\n{e}", c.name, c.args.join(" ")));
        }
    }
    eprintln!(
        "{group}: {} cases in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} {group} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn args(prefix: &[&str], rest: &[&str]) -> Vec<String> {
    prefix.iter().chain(rest).map(|s| s.to_string()).collect()
}

/// A quick valid training: n_a 4, 3 steps, no samples.
const QUICK: [&str; 6] = ["--hidden", "4", "--steps", "3", "--sample-every", "0"];

fn tr(name: &str, rest: &[&str], expect: Expect) -> Case {
    let mut c = case(name, &[], expect);
    c.args = args(&["train"], rest);
    c
}

// ---------------------------------------------------------------------------------------
// train

#[test]
fn train_data_files() {
    let cases = vec![
        tr(
            "data missing",
            &["--data", "missing.txt", "--out", "new"],
            Fail("missing.txt"),
        ),
        tr(
            "data empty",
            &["--data", "e.txt", "--out", "new"],
            Fail("e.txt: no text"),
        )
        .setup(|d| write(d, "e.txt", "")),
        tr(
            "data only newlines",
            &["--data", "e.txt", "--out", "new"],
            Fail("no text"),
        )
        .setup(|d| write(d, "e.txt", "\n\n\n\n")),
        tr(
            "data directory",
            &["--data", "adir", "--out", "new"],
            Fail("adir"),
        ),
        tr(
            "data binary",
            &["--data", "b.bin", "--out", "new"],
            Fail("invalid UTF-8"),
        )
        .setup(|d| write(d, "b.bin", [0xff, 0xfe, 0x00, 0x80, 0x41])),
        tr(
            "data latin-1",
            &["--data", "l.txt", "--out", "new"],
            Fail("l.txt: invalid UTF-8 at byte 3"),
        )
        .setup(|d| write(d, "l.txt", b"caf\xe9\n")),
        tr(
            "data utf-16",
            &["--data", "u.txt", "--out", "new"],
            Fail("invalid UTF-8"),
        )
        .setup(|d| write(d, "u.txt", b"\xff\xfea\x00b\x00\n\x00")),
        tr(
            "data over --max-bytes",
            &["--data", "text.txt", "--max-bytes", "10", "--out", "new"],
            Fail("--max-bytes"),
        ),
        tr(
            "data /dev/zero",
            &["--data", "/dev/zero", "--max-bytes", "1000", "--out", "new"],
            Fail("/dev/zero: longer than the limit of 1000 bytes"),
        ),
        tr(
            "data /dev/urandom",
            &[
                "--data",
                "/dev/urandom",
                "--max-bytes",
                "4096",
                "--out",
                "new",
            ],
            Fail("/dev/urandom"),
        ),
        tr(
            "data /dev/null",
            &["--data", "/dev/null", "--out", "new"],
            Fail("/dev/null: no text"),
        ),
        tr(
            "data one char lines",
            &["--data", "one.txt", "--out", "new"],
            Fail("validation fraction"),
        )
        .setup(|d| write(d, "one.txt", "x")),
        tr(
            "data one char stream",
            &["--data", "one.txt", "--mode", "stream", "--out", "new"],
            Fail("one.txt"),
        )
        .setup(|d| write(d, "one.txt", "x")),
        tr(
            "data one char stream no val",
            &[
                "--data",
                "one.txt",
                "--mode",
                "stream",
                "--val-fraction",
                "0",
                "--out",
                "new",
            ],
            Fail("too few"),
        )
        .setup(|d| write(d, "one.txt", "x")),
        tr(
            "data over --max-vocab",
            &["--data", "text.txt", "--max-vocab", "5", "--out", "new"],
            Fail("--max-vocab 5"),
        ),
        tr(
            "data dangling link",
            &["--data", "dl.txt", "--out", "new"],
            Fail("dl.txt"),
        )
        .setup(|d| link(d, "dl.txt", "nowhere.txt")),
        tr(
            "data link to dir",
            &["--data", "dl.txt", "--out", "new"],
            Fail("dl.txt"),
        )
        .setup(|d| link(d, "dl.txt", "adir")),
        tr(
            "data path through a file",
            &["--data", "notes.txt/x", "--out", "new"],
            Fail("notes.txt/x"),
        ),
        tr(
            "data is the run's history",
            &[
                "--data",
                "run/history.csv",
                "--val-fraction",
                "0",
                "--out",
                "run",
                "--force",
                "--hidden",
                "4",
                "--steps",
                "3",
            ],
            Fail("this command's input"),
        ),
        tr(
            "data is the run's checkpoint",
            &[
                "--data",
                "run/checkpoint.json",
                "--mode",
                "stream",
                "--max-vocab",
                "100000",
                "--out",
                "run",
                "--force",
                "--hidden",
                "4",
                "--steps",
                "3",
            ],
            Fail("this command's input"),
        ),
        tr(
            "data FIFO with a writer",
            &[
                "--data",
                "f.txt",
                "--out",
                "new",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample-every",
                "0",
            ],
            Valid("trained 3 steps"),
        )
        .setup(|d| fifo_writer(d, "f.txt", "abc\nbcd\ncde\n".repeat(20))),
        tr(
            "data one char lines no val",
            &[
                "--data",
                "one.txt",
                "--val-fraction",
                "0",
                "--out",
                "new",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample-every",
                "0",
            ],
            Valid("trained 3 steps"),
        )
        .setup(|d| write(d, "one.txt", "x")),
        tr(
            "data with CRLF and NUL",
            &[
                "--data",
                "w.txt",
                "--val-fraction",
                "0",
                "--out",
                "new",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample-every",
                "0",
            ],
            Valid("trained 3 steps"),
        )
        .setup(|d| write(d, "w.txt", "ab\r\nc\0d\r\n")),
    ];
    run_all("train data", cases);
}

#[test]
fn train_numeric_flags() {
    let o = ["--out", "new"];
    let f = |name: &str, flag: &[&str], expect: Expect| {
        let rest: Vec<&str> = flag.iter().chain(&o).copied().collect();
        tr(name, &rest, expect)
    };
    let cases = vec![
        f("hidden 0", &["--hidden", "0"], Fail("hidden = 0")),
        f("hidden -1", &["--hidden", "-1"], Usage("'-1'")),
        f("hidden 8193", &["--hidden", "8193"], Fail("hidden = 8193")),
        f(
            "hidden 100000",
            &["--hidden", "100000"],
            Fail("hidden = 100000"),
        ),
        f(
            "hidden overflow",
            &["--hidden", "99999999999999999999999"],
            Usage("--hidden"),
        ),
        f("hidden NaN", &["--hidden", "NaN"], Usage("--hidden")),
        f("steps 0", &["--steps", "0"], Fail("steps = 0")),
        f("steps -1", &["--steps", "-1"], Usage("'-1'")),
        f(
            "steps overflow",
            &["--steps", "18446744073709551616"],
            Usage("--steps"),
        ),
        f("lr 0", &["--lr", "0"], Fail("lr = 0")),
        f("lr -1", &["--lr", "-1"], Fail("lr = -1")),
        f("lr NaN", &["--lr", "NaN"], Fail("lr = NaN")),
        f("lr inf", &["--lr", "inf"], Fail("lr = inf")),
        f("lr -inf", &["--lr=-inf"], Fail("lr = -inf")),
        f("lr -inf unquoted", &["--lr", "-inf"], Usage("-i")),
        f("lr 1e999", &["--lr", "1e999"], Fail("lr = inf")),
        f("lr hex", &["--lr", "0x10"], Usage("--lr")),
        f("clip 0", &["--clip", "0"], Fail("clip = 0")),
        f("clip -1", &["--clip", "-1"], Fail("clip = -1")),
        f("clip NaN", &["--clip", "NaN"], Fail("clip = NaN")),
        f("clip inf", &["--clip", "inf"], Fail("clip = inf")),
        f("clip-norm 0", &["--clip-norm", "0"], Fail("clip = 0")),
        f("clip-norm -5", &["--clip-norm", "-5"], Fail("clip = -5")),
        f("clip-norm NaN", &["--clip-norm", "nan"], Fail("clip = NaN")),
        f(
            "clip and no-clip",
            &["--clip", "1", "--no-clip"],
            Usage("--no-clip"),
        ),
        f("batch 0", &["--batch", "0"], Fail("batch = 0")),
        f("batch 65537", &["--batch", "65537"], Fail("batch = 65537")),
        f("batch -1", &["--batch", "-1"], Usage("'-1'")),
        f(
            "seq-len 0",
            &["--mode", "stream", "--seq-len", "0"],
            Fail("seq_len = 0"),
        ),
        f(
            "seq-len 65537",
            &["--mode", "stream", "--seq-len", "65537"],
            Fail("seq_len = 65537"),
        ),
        f(
            "activations too large",
            &["--mode", "stream", "--batch", "65536", "--seq-len", "65536"],
            Fail("batch x seq_len x hidden"),
        ),
        f(
            "val-fraction -0.1",
            &["--val-fraction", "-0.1"],
            Fail("val_fraction = -0.1"),
        ),
        f(
            "val-fraction 0.51",
            &["--val-fraction", "0.51"],
            Fail("val_fraction = 0.51"),
        ),
        f(
            "val-fraction NaN",
            &["--val-fraction", "NaN"],
            Fail("val_fraction = NaN"),
        ),
        f(
            "val-fraction inf",
            &["--val-fraction", "inf"],
            Fail("val_fraction = inf"),
        ),
        f("seed -1", &["--seed", "-1"], Usage("'-1'")),
        f("sample-every -1", &["--sample-every", "-1"], Usage("'-1'")),
        f(
            "checkpoint-every 0",
            &["--checkpoint-every", "0"],
            Fail("checkpoint_every = 0"),
        ),
        f("max-bytes 0", &["--max-bytes", "0"], Fail("max_bytes = 0")),
        f("max-bytes -1", &["--max-bytes", "-1"], Usage("'-1'")),
        f("max-vocab 0", &["--max-vocab", "0"], Fail("--max-vocab 0")),
        f("mode bogus", &["--mode", "bogus"], Usage("bogus")),
        f("dtype f16", &["--dtype", "f16"], Usage("f16")),
        f(
            "optimizer rmsprop",
            &["--optimizer", "rmsprop"],
            Usage("rmsprop"),
        ),
        f("preset unknown", &["--preset", "huge"], Usage("huge")),
        f(
            "lr 1e300 diverges",
            &[
                "--lr",
                "1e300",
                "--hidden",
                "4",
                "--steps",
                "50",
                "--sample-every",
                "0",
            ],
            Fail("diverged"),
        ),
        f(
            "adam lr 1e300 diverges",
            &[
                "--optimizer",
                "adam",
                "--lr",
                "1e300",
                "--hidden",
                "4",
                "--steps",
                "50",
                "--sample-every",
                "0",
            ],
            Fail("diverged"),
        ),
        f(
            "lr 1e-320 is tiny but valid",
            &[
                "--lr",
                "1e-320",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample-every",
                "0",
            ],
            Valid("trained 3 steps"),
        ),
        f(
            "seed u64 max",
            &[
                "--seed",
                "18446744073709551615",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample-every",
                "0",
            ],
            Valid("seed 18446744073709551615"),
        ),
        f(
            "hidden 1 steps 1",
            &["--hidden", "1", "--steps", "1", "--sample-every", "1"],
            Valid("trained 1 steps"),
        ),
    ];
    run_all("train flags", cases);
}

#[test]
fn train_outputs_and_resume() {
    let q = |rest: &[&str]| -> Vec<String> { args(&["train"], &[rest, &QUICK[..]].concat()) };
    let with = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = q(rest);
        c
    };
    let run_files: [&str; 6] = [
        "run/checkpoint.json",
        "run/history.csv",
        "run/samples.txt",
        "run/loss.png",
        "run/loss.svg",
        "run/best.json",
    ];
    let replaced = |name: &str, rest: &[&str]| {
        let mut c = with(name, rest, Valid("trained"));
        for rel in run_files {
            let check: fn(&Path) = match rel {
                "run/checkpoint.json" | "run/best.json" => loads,
                "run/loss.png" => is_png,
                "run/loss.svg" => is_svg,
                _ => nothing,
            };
            c = c.changes(rel, check);
        }
        c
    };
    let cases = vec![
        with(
            "out /dev/null",
            &["--out", "/dev/null"],
            Fail("--out /dev/null: exists and is not a directory"),
        ),
        with(
            "out a regular file",
            &["--out", "notes.txt"],
            Fail("--out notes.txt"),
        ),
        with(
            "out under a regular file",
            &["--out", "notes.txt/run"],
            Fail("notes.txt/run"),
        ),
        with("out holds a run", &["--out", "run"], Fail("--resume run")),
        with("out link to a device", &["--out", "dn"], Fail("--out dn"))
            .setup(|d| link(d, "dn", "/dev/null")),
        with("out dangling link", &["--out", "dl"], Fail("dl")).setup(|d| link(d, "dl", "nowhere")),
        with(
            "out holds history only",
            &["--out", "h"],
            Fail("history.csv already exists"),
        )
        .setup(|d| write(d, "h/history.csv", "step\n")),
        with(
            "out --force checkpoint is a device link",
            &["--out", "run", "--force"],
            Fail("a device"),
        )
        .setup(|d| {
            fs::remove_file(d.join("run/checkpoint.json")).unwrap();
            link(d, "run/checkpoint.json", "/dev/null");
        }),
        with(
            "out --force history is a FIFO",
            &["--out", "run", "--force"],
            Fail("a FIFO"),
        )
        .setup(|d| {
            fs::remove_file(d.join("run/history.csv")).unwrap();
            fifo(d, "run/history.csv");
        }),
        with(
            "out --force loss.png is a directory",
            &["--out", "run", "--force"],
            Fail("loss.png: is a directory"),
        )
        .setup(|d| {
            fs::remove_file(d.join("run/loss.png")).unwrap();
            fs::create_dir(d.join("run/loss.png")).unwrap();
        }),
        with("out empty", &["--out="], Usage("--out")),
        replaced("out --force replaces a run", &["--out", "run", "--force"]),
        // --resume
        tr(
            "resume finished run",
            &["--resume", "run"],
            Fail("already at its last step 10"),
        ),
        tr(
            "resume steps below",
            &["--resume", "run", "--steps", "5"],
            Fail("--steps 5 must be greater"),
        ),
        tr(
            "resume steps equal",
            &["--resume", "run", "--steps", "10"],
            Fail("--steps 10 must be greater"),
        ),
        tr(
            "resume with --hidden",
            &["--resume", "run", "--steps", "20", "--hidden", "4"],
            Fail("--hidden cannot be combined"),
        ),
        tr(
            "resume with --lr",
            &["--resume", "run", "--steps", "20", "--lr", "0.1"],
            Fail("--lr cannot be combined"),
        ),
        tr(
            "resume with --seed --dtype",
            &[
                "--resume", "run", "--steps", "20", "--seed", "1", "--dtype", "f32",
            ],
            Fail("--seed, --dtype cannot be combined"),
        ),
        tr(
            "resume with --out",
            &["--resume", "run", "--steps", "20", "--out", "x"],
            Fail("--out cannot be combined"),
        ),
        tr(
            "resume with --force",
            &["--resume", "run", "--steps", "20", "--force"],
            Fail("--force cannot be combined"),
        ),
        tr(
            "resume with --lowercase",
            &["--resume", "run", "--steps", "20", "--lowercase"],
            Fail("--lowercase cannot be combined"),
        ),
        tr(
            "resume dir without checkpoint",
            &["--resume", "adir", "--steps", "20"],
            Fail("adir/checkpoint.json"),
        ),
        tr(
            "resume missing",
            &["--resume", "nowhere", "--steps", "20"],
            Fail("nowhere"),
        ),
        tr(
            "resume a text file",
            &["--resume", "notes.txt", "--steps", "20"],
            Fail("notes.txt: not a valid checkpoint"),
        ),
        tr(
            "resume checkpoint-every 0",
            &[
                "--resume",
                "run",
                "--steps",
                "20",
                "--checkpoint-every",
                "0",
            ],
            Fail("checkpoint_every = 0"),
        ),
        tr(
            "resume data missing",
            &["--resume", "run", "--steps", "20", "--data", "missing.txt"],
            Fail("missing.txt"),
        ),
        tr(
            "resume data outside vocabulary",
            &["--resume", "run", "--steps", "20", "--data", "v.txt"],
            Fail("v.txt"),
        )
        .setup(|d| write(d, "v.txt", "ÄÖÜ\n".repeat(40))),
        tr(
            "resume data is the checkpoint",
            &[
                "--resume",
                "run",
                "--steps",
                "20",
                "--data",
                "run/checkpoint.json",
                "--max-vocab",
                "100000",
            ],
            Fail("run/checkpoint.json"),
        ),
        tr(
            "resume history garbage",
            &["--resume", "run", "--steps", "20"],
            Fail("run/history.csv: not a history file"),
        )
        .setup(|d| write(d, "run/history.csv", "step,loss\n10,1\n20,2\ngarbage\n")),
        tr(
            "resume history is a directory",
            &["--resume", "run", "--steps", "20"],
            Fail("history.csv: is a directory"),
        )
        .setup(|d| {
            fs::remove_file(d.join("run/history.csv")).unwrap();
            fs::create_dir(d.join("run/history.csv")).unwrap();
        }),
        tr(
            "resume imported without data",
            &["--resume", "imp", "--steps", "20"],
            Fail("pass --data"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("imported:model.safetensors")
            })
        }),
        tr(
            "resume unknown bundled data",
            &["--resume", "imp", "--steps", "20"],
            Fail("unknown bundled data"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("bundled:other.txt")
            })
        }),
        tr(
            "resume origin file gone",
            &["--resume", "imp", "--steps", "20"],
            Fail("/nonexistent/gone.txt"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("/nonexistent/gone.txt")
            })
        }),
        tr(
            "resume steps overflow",
            &["--resume", "run", "--steps", "99999999999999999999"],
            Usage("--steps"),
        ),
        {
            let mut c = tr(
                "resume continues",
                &[
                    "--resume",
                    "run",
                    "--steps",
                    "13",
                    "--checkpoint-every",
                    "2",
                ],
                Valid("resuming run at step 10 of 13"),
            );
            c = c
                .changes("run/checkpoint.json", loads)
                .changes("run/best.json", loads)
                .changes("run/history.csv", nothing);
            c.changes("run/loss.png", is_png)
                .changes("run/loss.svg", is_svg)
        },
    ];
    run_all("train outputs/resume", cases);
}

// ---------------------------------------------------------------------------------------
// Damaged checkpoints, for every command that reads one

/// (name, setup writing `bad.json`, what the error says).
fn damaged_checkpoints() -> Vec<(&'static str, Step, &'static str)> {
    vec![
        (
            "truncated",
            |d| {
                bytes_of(d, "run/checkpoint.json", "bad.json", |b| {
                    b[..b.len() / 2].to_vec()
                })
            },
            "bad.json: not a valid checkpoint (line 1",
        ),
        (
            "empty",
            |d| write(d, "bad.json", ""),
            "bad.json: not a valid checkpoint",
        ),
        (
            "not JSON",
            |d| write(d, "bad.json", "hello\n"),
            "bad.json: not a valid checkpoint",
        ),
        (
            "binary",
            |d| write(d, "bad.json", [0xff, 0x00, 0x13, 0x37]),
            "bad.json: not a valid checkpoint",
        ),
        (
            "JSON array",
            |d| write(d, "bad.json", "[]"),
            "missing format_version",
        ),
        (
            "version 2",
            |d| ckpt(d, "bad.json", |c| c["format_version"] = json!(2)),
            "checkpoint format version 2",
        ),
        (
            "version as string",
            |d| ckpt(d, "bad.json", |c| c["format_version"] = json!("1")),
            "missing format_version",
        ),
        (
            "version huge",
            |d| ckpt(d, "bad.json", |c| c["format_version"] = json!(u64::MAX)),
            "checkpoint format version",
        ),
        (
            "no state",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c.as_object_mut().unwrap().remove("state");
                })
            },
            "missing field `state`",
        ),
        (
            "no data_origin",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c.as_object_mut().unwrap().remove("data_origin");
                })
            },
            "missing field `data_origin`",
        ),
        (
            "step as string",
            |d| ckpt(d, "bad.json", |c| c["state"]["step"] = json!("ten")),
            "invalid type",
        ),
        (
            "negative step",
            |d| ckpt(d, "bad.json", |c| c["state"]["step"] = json!(-1)),
            "bad.json: not a valid checkpoint",
        ),
        (
            "dtype f16",
            |d| ckpt(d, "bad.json", |c| c["dtype"] = json!("f16")),
            "unknown variant `f16`",
        ),
        (
            "dtype disagrees with config",
            |d| ckpt(d, "bad.json", |c| c["dtype"] = json!("f32")),
            "element type f32 in the header, f64 in the configuration",
        ),
        (
            "vocabulary too short",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c["state"]["vocab"].as_array_mut().unwrap().pop();
                })
            },
            "vocabulary of 26",
        ),
        (
            "vocabulary with a string",
            |d| ckpt(d, "bad.json", |c| c["state"]["vocab"][1] = json!("ab")),
            "bad.json: not a valid checkpoint",
        ),
        (
            "hidden disagrees",
            |d| ckpt(d, "bad.json", |c| c["state"]["config"]["hidden"] = json!(9)),
            "hidden size 8 in the parameters, 9 in the configuration",
        ),
        (
            "weight dims disagree with data",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c["state"]["params"]["w_aa"]["dim"] = json!([8, 9])
                })
            },
            "bad.json: not a valid checkpoint",
        ),
        (
            "weights square but wrong",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c["state"]["params"]["w_aa"]["dim"] = json!([4, 4]);
                    c["state"]["params"]["w_aa"]["data"] = json!(vec![0.0; 16]);
                })
            },
            "inconsistent checkpoint",
        ),
        (
            "NaN weight (null)",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c["state"]["params"]["w_ya"]["data"][3] = Value::Null
                })
            },
            "bad.json: not a valid checkpoint",
        ),
        (
            "infinite weight (1e999)",
            |d| {
                bytes_of(d, "run/checkpoint.json", "bad.json", |b| {
                    let text = String::from_utf8(b).unwrap();
                    let at = text
                        .find("\"w_ya\":{\"v\":1,\"dim\":[27,8],\"data\":[")
                        .unwrap();
                    let start = at + "\"w_ya\":{\"v\":1,\"dim\":[27,8],\"data\":[".len();
                    let end = start + text[start..].find(',').unwrap();
                    format!("{}1e999{}", &text[..start], &text[end..]).into_bytes()
                })
            },
            "bad.json: not a valid checkpoint",
        ),
        (
            "carried state shape",
            |d| ckpt(d, "bad.json", |c| c["state"]["config"]["batch"] = json!(3)),
            "carried hidden state",
        ),
        (
            "negative lr in config",
            |d| {
                ckpt(d, "bad.json", |c| {
                    c["state"]["config"]["optimizer"]["lr"] = json!(-1.0)
                })
            },
            "configuration: invalid lr = -1",
        ),
        (
            "hidden 0 in config",
            |d| ckpt(d, "bad.json", |c| c["state"]["config"]["hidden"] = json!(0)),
            "inconsistent checkpoint",
        ),
        (
            "a directory named bad.json",
            |d| fs::create_dir(d.join("bad.json")).unwrap(),
            "bad.json/checkpoint.json",
        ),
        ("a FIFO", |d| fifo(d, "bad.json"), "bad.json: is a FIFO"),
        (
            "a link to /dev/null",
            |d| link(d, "bad.json", "/dev/null"),
            "bad.json: is a device",
        ),
        (
            "a link to /dev/zero",
            |d| link(d, "bad.json", "/dev/zero"),
            "bad.json: is a device",
        ),
        (
            "a dangling link",
            |d| link(d, "bad.json", "nowhere.json"),
            "bad.json: cannot open",
        ),
        (
            "a link to a FIFO",
            |d| {
                fifo(d, "p");
                link(d, "bad.json", "p");
            },
            "bad.json: is a FIFO",
        ),
    ]
}

#[test]
fn damaged_checkpoints_for_every_reader() {
    let commands: [(&str, &[&str]); 7] = [
        ("sample", &["sample", "--checkpoint", "bad.json"]),
        ("eval", &["eval", "--checkpoint", "bad.json"]),
        (
            "export",
            &[
                "export",
                "--checkpoint",
                "bad.json",
                "--out",
                "x.safetensors",
            ],
        ),
        (
            "plot hidden",
            &[
                "plot",
                "hidden",
                "--checkpoint",
                "bad.json",
                "--text",
                "abc",
                "--out",
                "h.png",
            ],
        ),
        (
            "plot gradients",
            &[
                "plot",
                "gradients",
                "--checkpoint",
                "bad.json",
                "--out",
                "g.svg",
            ],
        ),
        (
            "probs",
            &[
                "probs",
                "--checkpoint",
                "bad.json",
                "--text",
                "abc",
                "--json",
            ],
        ),
        (
            "resume",
            &["train", "--resume", "bad.json", "--steps", "20"],
        ),
    ];
    let mut cases = Vec::new();
    for (i, (damage, setup, says)) in damaged_checkpoints().into_iter().enumerate() {
        for (j, (cmd, argv)) in commands.iter().enumerate() {
            // Every damage for sample, eval and resume; the others take turns, so each
            // command meets about half of them.
            let essential = matches!(*cmd, "sample" | "eval" | "resume");
            if !essential && (i + j) % 2 == 1 {
                continue;
            }
            cases.push(case(&format!("{cmd}: checkpoint {damage}"), argv, Fail(says)).setup(setup));
        }
    }
    run_all("damaged checkpoints", cases);
}

// ---------------------------------------------------------------------------------------
// sample, eval, probs

#[test]
fn sample_eval_probs() {
    let s = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["sample", "--checkpoint", "run"], rest);
        c
    };
    let e = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["eval"], rest);
        c
    };
    let p = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["probs"], rest);
        c
    };
    let cases = vec![
        s(
            "temperature 0",
            &["--temperature", "0"],
            Fail("temperature = 0"),
        ),
        s(
            "temperature -1",
            &["--temperature", "-1"],
            Fail("temperature = -1"),
        ),
        s(
            "temperature NaN",
            &["--temperature", "NaN"],
            Fail("temperature = NaN"),
        ),
        s(
            "temperature inf",
            &["--temperature", "inf"],
            Fail("temperature = inf"),
        ),
        s(
            "temperature subnormal",
            &["--temperature", "1e-320"],
            Fail("temperature = 1e-320"),
        ),
        s(
            "temperature 1e-300 is greedy",
            &["--temperature", "1e-300", "--n", "2"],
            Valid("\n"),
        ),
        s(
            "temperature 1e300 is uniform",
            &["--temperature", "1e300", "--n", "2"],
            Valid("\n"),
        ),
        s("top-k 0", &["--top-k", "0"], Fail("top_k = 0")),
        s("top-k -1", &["--top-k", "-1"], Fail("top_k = -1")),
        s(
            "top-k above vocabulary",
            &["--top-k", "1000000", "--n", "2"],
            Valid("\n"),
        ),
        s("n over the cap", &["--n", "1000001"], Fail("n = 1000001")),
        s("n -1", &["--n", "-1"], Usage("'-1'")),
        s("n 0 prints nothing", &["--n", "0"], Valid("")),
        s("max-len 0", &["--max-len", "0"], Fail("max_len = 0")),
        s(
            "max-len over the cap",
            &["--max-len", "1000001"],
            Fail("max_len = 1000001"),
        ),
        s("seed -1", &["--seed", "-1"], Usage("'-1'")),
        s(
            "prefix with a newline",
            &["--prefix", "ab\ncd"],
            Fail("holds a newline"),
        ),
        s(
            "prefix outside vocabulary",
            &["--prefix", "é"],
            Fail("--prefix \"é\" does not fit"),
        ),
        s("prefix digit", &["--prefix", "x1"], Fail("--prefix \"x1\"")),
        s(
            "prefix uppercase is lowercased",
            &["--prefix", "TRI", "--n", "2"],
            Valid("tri"),
        ),
        s(
            "prefix too long",
            &["--prefix", &"a".repeat(100_001)],
            Fail("--prefix is longer than 100000"),
        ),
        {
            let mut c = case("stream prefix with newline", &[], Valid("ab\nthe"));
            c.args = args(
                &[
                    "sample",
                    "--checkpoint",
                    "s32",
                    "--prefix",
                    "ab\nthe",
                    "--n",
                    "1",
                ],
                &[],
            );
            c
        },
        {
            let mut c = case(
                "stream prefix outside vocabulary",
                &[],
                Fail("--prefix \"7\""),
            );
            c.args = args(&["sample", "--checkpoint", "s32", "--prefix", "7"], &[]);
            c
        },
        case(
            "sample missing --checkpoint",
            &["sample"],
            Usage("--checkpoint"),
        ),
        // eval
        e(
            "stream model on one character",
            &["--checkpoint", "s32", "--data", "one.txt"],
            Fail("one.txt: nothing to predict"),
        )
        .setup(|d| write(d, "one.txt", "t")),
        e(
            "names model on unknown chars",
            &["--checkpoint", "run", "--data", "text.txt"],
            Fail("not in the model's vocabulary"),
        ),
        e(
            "stream model on unknown chars",
            &["--checkpoint", "s32", "--data", "v.txt"],
            Fail("v.txt"),
        )
        .setup(|d| write(d, "v.txt", "qq%%")),
        e(
            "data missing",
            &["--checkpoint", "run", "--data", "missing.txt"],
            Fail("missing.txt"),
        ),
        e(
            "data empty",
            &["--checkpoint", "run", "--data", "e.txt"],
            Fail("e.txt: no text"),
        )
        .setup(|d| write(d, "e.txt", "")),
        e(
            "data directory",
            &["--checkpoint", "run", "--data", "adir"],
            Fail("adir"),
        ),
        e(
            "data binary",
            &["--checkpoint", "run", "--data", "b.bin"],
            Fail("invalid UTF-8"),
        )
        .setup(|d| write(d, "b.bin", [0x80, 0x81])),
        e(
            "data /dev/zero",
            &[
                "--checkpoint",
                "run",
                "--data",
                "/dev/zero",
                "--max-bytes",
                "100",
            ],
            Fail("--max-bytes"),
        ),
        e(
            "data over --max-bytes",
            &[
                "--checkpoint",
                "run",
                "--data",
                "names.txt",
                "--max-bytes",
                "5",
            ],
            Fail("names.txt: longer than the limit of 5 bytes"),
        ),
        e(
            "max-bytes -1",
            &["--checkpoint", "run", "--max-bytes", "-1"],
            Usage("'-1'"),
        ),
        e(
            "imported checkpoint without data",
            &["--checkpoint", "imp"],
            Fail("pass --data"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("imported:model.safetensors")
            })
        }),
        e(
            "origin file gone",
            &["--checkpoint", "imp"],
            Fail("/nonexistent/gone.txt"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("/nonexistent/gone.txt")
            })
        }),
        e(
            "huge finite weights",
            &["--checkpoint", "big", "--json"],
            Valid("loss_per_char"),
        )
        .setup(|d| {
            ckpt(d, "big/checkpoint.json", |c| {
                for (i, w) in c["state"]["params"]["w_ya"]["data"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .enumerate()
                {
                    *w = json!(if i % 2 == 0 { 1e300 } else { -1e300 });
                }
            })
        }),
        e(
            "one name",
            &["--checkpoint", "run", "--data", "one.txt"],
            Valid("chars predicted: 2"),
        )
        .setup(|d| write(d, "one.txt", "x")),
        e(
            "stream model default data",
            &["--checkpoint", "s32", "--json"],
            Valid("\"mode\":\"stream\""),
        ),
        // probs
        p(
            "without --json",
            &["--checkpoint", "run", "--text", "ab"],
            Fail("pass --json"),
        ),
        p(
            "empty text",
            &["--checkpoint", "run", "--text", "", "--json"],
            Fail("--text is empty"),
        ),
        p(
            "text outside vocabulary",
            &["--checkpoint", "run", "--text", "a!", "--json"],
            Fail("--text \"a!\""),
        ),
        p(
            "text too long",
            &[
                "--checkpoint",
                "run",
                "--text",
                &"a".repeat(100_001),
                "--json",
            ],
            Fail("--text is longer than 100000"),
        ),
        p(
            "valid",
            &["--checkpoint", "s32", "--text", "the", "--json"],
            Valid("\"probs\""),
        ),
    ];
    run_all("sample/eval/probs", cases);
}

// ---------------------------------------------------------------------------------------
// Output targets: export, plot and import

/// (name, setup, --out, what the error says) for a file a command would write.
fn bad_targets() -> Vec<(&'static str, Step, &'static str, &'static str)> {
    vec![
        (
            "/dev/null",
            nothing,
            "/dev/null",
            "--out /dev/null: is a device",
        ),
        (
            "/dev/full",
            nothing,
            "/dev/full",
            "--out /dev/full: is a device",
        ),
        (
            "a FIFO",
            |d| fifo(d, "p.png"),
            "p.png",
            "--out p.png: is a FIFO",
        ),
        (
            "a directory",
            nothing,
            "adir.png",
            "--out adir.png: is a directory",
        ),
        (
            "a link to a device",
            |d| link(d, "l.png", "/dev/null"),
            "l.png",
            "is a device (the target of a link",
        ),
        (
            "a dangling link",
            |d| link(d, "l.png", "nowhere/x.png"),
            "l.png",
            "--out l.png: a symbolic link whose target cannot be resolved",
        ),
        (
            "an existing file",
            nothing,
            "notes.png",
            "--out notes.png: already exists; pass --force",
        ),
        (
            "a missing directory",
            nothing,
            "no/such/x.png",
            "the directory no/such does not exist",
        ),
        (
            "under a regular file",
            nothing,
            "notes.txt/x.png",
            "notes.txt is a regular file, not a directory",
        ),
        (
            "a link to the checkpoint",
            |d| link(d, "l.png", "run/checkpoint.json"),
            "l.png",
            "is this command's input",
        ),
    ]
}

#[test]
fn export_plot_outputs() {
    let mut cases = Vec::new();
    let commands: [(&str, &[&str]); 5] = [
        ("export", &["export", "--checkpoint", "run"]),
        ("plot loss", &["plot", "loss", "--run", "run"]),
        (
            "plot hidden",
            &["plot", "hidden", "--checkpoint", "run", "--text", "abc"],
        ),
        (
            "plot probs",
            &["plot", "probs", "--checkpoint", "run", "--text", "abc"],
        ),
        (
            "plot gradients",
            &["plot", "gradients", "--checkpoint", "run"],
        ),
    ];
    for (cmd, argv) in commands {
        for (target, setup, out, says) in bad_targets() {
            let mut c = case(&format!("{cmd}: --out {target}"), &[], Fail(says)).setup(setup);
            c.args = args(argv, &["--out", out]);
            cases.push(c);
        }
        // --force replaces an existing file, never a device or an input.
        let mut c = case(
            &format!("{cmd}: --force replaces"),
            &[],
            Valid("wrote notes.png"),
        );
        c.args = args(argv, &["--out", "notes.png", "--force"]);
        let check: fn(&Path) = if cmd == "export" {
            is_safetensors
        } else {
            is_png
        };
        cases.push(c.changes("notes.png", check));
        let mut c = case(
            &format!("{cmd}: --force onto /dev/full"),
            &[],
            Fail("is a device"),
        );
        c.args = args(argv, &["--out", "/dev/full", "--force"]);
        cases.push(c);
        let mut c = case(
            &format!("{cmd}: --force onto the checkpoint"),
            &[],
            Fail("this command's input"),
        );
        c.args = args(argv, &["--out", "run/checkpoint.json", "--force"]);
        if cmd != "export" {
            c.args = args(
                argv,
                &["--out", "run/checkpoint.json", "--force", "--format", "png"],
            );
            c.expect = Fail("unknown image format \"json\"");
        }
        cases.push(c);
    }
    let plot = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["plot"], rest);
        c
    };
    cases.extend([
        plot(
            "loss onto its history via a link",
            &["loss", "--run", "run", "--out", "h.png", "--force"],
            Fail("this command's input (--run run/history.csv)"),
        )
        .setup(|d| link(d, "h.png", "run/history.csv")),
        plot(
            "loss --out history.csv",
            &[
                "loss",
                "--run",
                "run",
                "--out",
                "run/history.csv",
                "--force",
            ],
            Fail("unknown image format \"csv\""),
        ),
        plot(
            "loss --out .jpg",
            &["loss", "--run", "run", "--out", "x.jpg"],
            Fail("--out x.jpg: unknown image format \"jpg\""),
        ),
        plot(
            "loss format disagrees",
            &["loss", "--run", "run", "--format", "svg", "--out", "x.png"],
            Fail("--format svg disagrees with --out x.png"),
        ),
        plot(
            "loss format unknown",
            &["loss", "--run", "run", "--format", "gif"],
            Usage("gif"),
        ),
        plot(
            "loss run missing",
            &["loss", "--run", "nowhere"],
            Fail("nowhere/history.csv"),
        ),
        plot(
            "loss run is a file",
            &["loss", "--run", "notes.txt"],
            Fail("notes.txt/history.csv"),
        ),
        plot(
            "loss history empty",
            &["loss", "--run", "run"],
            Fail("no history rows"),
        )
        .setup(|d| write(d, "run/history.csv", "")),
        plot(
            "loss history garbage",
            &["loss", "--run", "run"],
            Fail("history.csv"),
        )
        .setup(|d| write(d, "run/history.csv", "step,loss\nx,y,z\n")),
        plot(
            "loss history non-finite",
            &["loss", "--run", "run"],
            Fail("no finite loss values"),
        )
        .setup(|d| {
            write(
                d,
                "run/history.csv",
                "step,loss,smoothed_loss,val_loss,grad_norm,chars_per_s\n5,NaN,inf,,1,1\n",
            )
        }),
        plot(
            "loss history a FIFO",
            &["loss", "--run", "run"],
            Fail("run/history.csv: is a FIFO"),
        )
        .setup(|d| {
            fs::remove_file(d.join("run/history.csv")).unwrap();
            fifo(d, "run/history.csv");
        }),
        plot(
            "loss default replaces loss.png",
            &["loss", "--run", "run"],
            Valid("wrote run/loss.png"),
        )
        .changes("run/loss.png", is_png),
        plot(
            "loss svg",
            &["loss", "--run", "run", "--out", "x.svg"],
            Valid("wrote x.svg"),
        ),
        plot(
            "hidden empty text",
            &["hidden", "--checkpoint", "run", "--text", ""],
            Fail("--text is empty"),
        ),
        plot(
            "hidden text too long",
            &["hidden", "--checkpoint", "run", "--text", &"a".repeat(1001)],
            Fail("longer than 1000"),
        ),
        plot(
            "hidden text outside vocabulary",
            &["hidden", "--checkpoint", "run", "--text", "a b"],
            Fail("--text \"a b\""),
        ),
        plot(
            "probs text outside vocabulary",
            &["probs", "--checkpoint", "s32", "--text", "xy#"],
            Fail("--text \"xy#\""),
        ),
        plot(
            "hidden default out",
            &["hidden", "--checkpoint", "run", "--text", "abc"],
            Valid("wrote run/hidden.png"),
        ),
        plot(
            "gradients radius 0",
            &["gradients", "--checkpoint", "run", "--radius", "0"],
            Fail("radius = 0"),
        ),
        plot(
            "gradients radius -1",
            &["gradients", "--checkpoint", "run", "--radius=-1"],
            Fail("radius = -1"),
        ),
        plot(
            "gradients radius NaN",
            &["gradients", "--checkpoint", "run", "--radius", "1,NaN"],
            Fail("radius = NaN"),
        ),
        plot(
            "gradients radius inf",
            &["gradients", "--checkpoint", "run", "--radius", "inf"],
            Fail("radius = inf"),
        ),
        plot(
            "gradients radius empty",
            &["gradients", "--checkpoint", "run", "--radius", ""],
            Usage("--radius"),
        ),
        plot(
            "gradients one char stream",
            &["gradients", "--checkpoint", "s32", "--text", "t"],
            Fail("at least two characters"),
        ),
        plot(
            "gradients empty text",
            &["gradients", "--checkpoint", "run", "--text", ""],
            Fail("--text is empty"),
        ),
        plot(
            "gradients huge recurrent weights",
            &["gradients", "--checkpoint", "big", "--out", "g.png"],
            Valid("wrote g.png"),
        )
        .setup(|d| {
            ckpt(d, "big/checkpoint.json", |c| {
                for w in c["state"]["params"]["w_aa"]["data"].as_array_mut().unwrap() {
                    *w = json!(1e300);
                }
            })
        }),
        plot(
            "gradients saturated weights",
            &["gradients", "--checkpoint", "big", "--out", "g.png"],
            Fail("no positive finite gradient norms"),
        )
        .setup(|d| {
            ckpt(d, "big/checkpoint.json", |c| {
                for w in c["state"]["params"]["w_aa"]["data"].as_array_mut().unwrap() {
                    *w = json!(1e300);
                }
                for (i, w) in c["state"]["params"]["w_ya"]["data"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .enumerate()
                {
                    *w = json!(if i % 2 == 0 { 1e300 } else { -1e300 });
                }
            })
        }),
        plot(
            "gradients imported default text",
            &["gradients", "--checkpoint", "imp", "--out", "g.png"],
            Valid("wrote g.png"),
        )
        .setup(|d| {
            ckpt(d, "imp/checkpoint.json", |c| {
                c["data_origin"] = json!("imported:x")
            })
        }),
    ]);
    run_all("export/plot outputs", cases);
}

#[test]
fn import_safetensors() {
    let imp = |name: &str, file: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["import", file], rest);
        c
    };
    let o = ["--out", "new.json"];
    let cases = vec![
        imp(
            "truncated",
            "bad.safetensors",
            &o,
            Fail("bad.safetensors: not a valid safetensors file"),
        )
        .setup(|d| {
            bytes_of(d, "model.safetensors", "bad.safetensors", |b| {
                b[..b.len() / 2].to_vec()
            })
        }),
        imp(
            "empty",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| write(d, "bad.safetensors", "")),
        imp(
            "seven bytes",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| write(d, "bad.safetensors", "1234567")),
        imp(
            "header length u64::MAX",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| {
            bytes_of(d, "model.safetensors", "bad.safetensors", |mut b| {
                b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            })
        }),
        imp(
            "header length past the end",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| {
            bytes_of(d, "model.safetensors", "bad.safetensors", |mut b| {
                let n = b.len() as u64;
                b[..8].copy_from_slice(&n.to_le_bytes());
                b
            })
        }),
        imp(
            "header length 0",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| {
            bytes_of(d, "model.safetensors", "bad.safetensors", |mut b| {
                b[..8].copy_from_slice(&0u64.to_le_bytes());
                b
            })
        }),
        imp(
            "header not JSON",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| {
            bytes_of(d, "model.safetensors", "bad.safetensors", |mut b| {
                b[8] = b'#';
                b
            })
        }),
        imp(
            "dtype I64",
            "bad.safetensors",
            &o,
            Fail("tensor rnn.weight_ih_l0 has dtype"),
        )
        .setup(|d| {
            st(d, |h, _| {
                for name in [
                    "rnn.weight_ih_l0",
                    "rnn.weight_hh_l0",
                    "rnn.bias_ih_l0",
                    "rnn.bias_hh_l0",
                    "fc.weight",
                    "fc.bias",
                ] {
                    h[name]["dtype"] = json!("I64");
                }
            })
        }),
        imp(
            "dtype F32 with F64 sizes",
            "bad.safetensors",
            &o,
            Fail("not a valid safetensors file"),
        )
        .setup(|d| st(d, |h, _| h["fc.bias"]["dtype"] = json!("F32"))),
        imp(
            "missing tensor",
            "bad.safetensors",
            &o,
            Fail("missing tensor rnn.bias_hh_l0"),
        )
        .setup(|d| {
            st(d, |h, data| {
                // Drop the tensor and its bytes; later offsets move down.
                let [start, end] = [
                    h["rnn.bias_hh_l0"]["data_offsets"][0].as_u64().unwrap(),
                    h["rnn.bias_hh_l0"]["data_offsets"][1].as_u64().unwrap(),
                ];
                let len = end - start;
                data.drain(start as usize..end as usize);
                h.as_object_mut().unwrap().remove("rnn.bias_hh_l0");
                for (name, t) in h.as_object_mut().unwrap().iter_mut() {
                    if name == "__metadata__" {
                        continue;
                    }
                    for k in 0..2 {
                        let v = t["data_offsets"][k].as_u64().unwrap();
                        if v >= end {
                            t["data_offsets"][k] = json!(v - len);
                        }
                    }
                }
            })
        }),
        imp(
            "wrong shape",
            "bad.safetensors",
            &o,
            Fail("tensor rnn.weight_hh_l0 has shape [4, 16], expected [8, 8]"),
        )
        .setup(|d| st(d, |h, _| h["rnn.weight_hh_l0"]["shape"] = json!([4, 16]))),
        imp(
            "no metadata",
            "bad.safetensors",
            &o,
            Fail("missing or invalid \"rnn\" metadata"),
        )
        .setup(|d| {
            st(d, |h, _| {
                h.as_object_mut().unwrap().remove("__metadata__");
            })
        }),
        imp(
            "metadata not JSON",
            "bad.safetensors",
            &o,
            Fail("missing or invalid \"rnn\" metadata"),
        )
        .setup(|d| st(d, |h, _| h["__metadata__"]["rnn"] = json!("{not json"))),
        imp(
            "metadata vocabulary too short",
            "bad.safetensors",
            &o,
            Fail("has shape"),
        )
        .setup(|d| {
            st(d, |h, _| {
                st_meta(h, |m| {
                    m["vocab"].as_array_mut().unwrap().pop();
                })
            })
        }),
        imp(
            "metadata config invalid",
            "bad.safetensors",
            &o,
            Fail("invalid training configuration"),
        )
        .setup(|d| {
            st(d, |h, _| {
                st_meta(h, |m| m["config"]["optimizer"]["lr"] = json!(-1.0))
            })
        }),
        imp(
            "NaN in a tensor",
            "bad.safetensors",
            &o,
            Fail("tensor fc.bias holds a value that is not finite"),
        )
        .setup(|d| {
            st(d, |h, data| {
                let start = h["fc.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
                data[start..start + 8].copy_from_slice(&f64::NAN.to_le_bytes());
            })
        }),
        imp(
            "a FIFO",
            "p.safetensors",
            &o,
            Fail("p.safetensors: is a FIFO"),
        )
        .setup(|d| fifo(d, "p.safetensors")),
        imp("a directory", "adir", &o, Fail("adir: is a directory")),
        imp("/dev/zero", "/dev/zero", &o, Fail("/dev/zero: is a device")),
        imp(
            "missing",
            "nowhere.safetensors",
            &o,
            Fail("nowhere.safetensors"),
        ),
        imp(
            "a checkpoint instead",
            "run/checkpoint.json",
            &o,
            Fail("run/checkpoint.json"),
        ),
        // --out
        imp(
            "out existing json",
            "model.safetensors",
            &["--out", "notes.json"],
            Fail("--out notes.json: already exists; pass --force"),
        ),
        imp(
            "out run without force",
            "model.safetensors",
            &["--out", "run"],
            Fail("run/checkpoint.json: already exists; pass --force"),
        ),
        imp(
            "out /dev/null",
            "model.safetensors",
            &["--out", "/dev/null"],
            Fail("--out /dev/null: exists and is not a directory"),
        ),
        imp(
            "out a FIFO json",
            "model.safetensors",
            &["--out", "p.json", "--force"],
            Fail("is a FIFO"),
        )
        .setup(|d| fifo(d, "p.json")),
        imp(
            "out link to device",
            "model.safetensors",
            &["--out", "l.json", "--force"],
            Fail("is a device"),
        )
        .setup(|d| link(d, "l.json", "/dev/null")),
        imp(
            "out dangling link",
            "model.safetensors",
            &["--out", "l.json"],
            Fail("symbolic link"),
        )
        .setup(|d| link(d, "l.json", "nowhere/x.json")),
        imp(
            "out is the input file",
            "model.safetensors",
            &["--out", "model.safetensors", "--force"],
            Fail("exists and is not a directory"),
        ),
        imp(
            "out link to the input",
            "model.safetensors",
            &["--out", "l.json", "--force"],
            Fail("is this command's input (FILE"),
        )
        .setup(|d| link(d, "l.json", "model.safetensors")),
        imp(
            "out is --data",
            "model.safetensors",
            &["--out", "notes.json", "--data", "notes.json", "--force"],
            Fail("is this command's input (--data"),
        ),
        imp(
            "out under a file",
            "model.safetensors",
            &["--out", "notes.txt/x.json"],
            Fail("notes.txt"),
        ),
        imp(
            "out --force replaces run",
            "model.safetensors",
            &["--out", "run", "--force"],
            Valid("wrote run/checkpoint.json"),
        )
        .changes("run/checkpoint.json", loads),
        imp(
            "out new nested directory",
            "model.safetensors",
            &["--out", "a/b/c"],
            Valid("wrote a/b/c/checkpoint.json"),
        ),
        imp("missing --out", "model.safetensors", &[], Usage("--out")),
    ];
    run_all("import", cases);
}

// ---------------------------------------------------------------------------------------
// gradcheck and bench

#[test]
fn gradcheck_and_bench_caps() {
    let g = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["gradcheck"], rest);
        c
    };
    let b = |name: &str, rest: &[&str], expect: Expect| {
        let mut c = case(name, &[], expect);
        c.args = args(&["bench"], rest);
        c
    };
    let cases = vec![
        g("hidden 0", &["--hidden", "0"], Fail("hidden = 0")),
        g(
            "hidden 100000",
            &["--hidden", "100000"],
            Fail("hidden = 100000"),
        ),
        g(
            "hidden overflow",
            &["--hidden", "18446744073709551616"],
            Usage("--hidden"),
        ),
        g("vocab 0", &["--vocab", "0"], Fail("vocab = 0")),
        g("vocab 1", &["--vocab", "1"], Fail("vocab = 1")),
        g("vocab 513", &["--vocab", "513"], Fail("vocab = 513")),
        g("seq-len 0", &["--seq-len", "0"], Fail("seq_len = 0")),
        g(
            "seq-len 10001",
            &["--seq-len", "10001"],
            Fail("seq_len = 10001"),
        ),
        g("batch 0", &["--batch", "0"], Fail("batch = 0")),
        g("batch 1025", &["--batch", "1025"], Fail("batch = 1025")),
        g("std 0", &["--std", "0"], Fail("std = 0")),
        g("std -1", &["--std", "-1"], Fail("std = -1")),
        g("std NaN", &["--std", "NaN"], Fail("std = NaN")),
        g("std inf", &["--std", "inf"], Fail("std = inf")),
        g("std 1e300", &["--std", "1e300"], Fail("std = 1e300")),
        g("std 100 saturates", &["--std", "100"], Fail("std = 100")),
        g("seed -1", &["--seed", "-1"], Usage("'-1'")),
        g("default passes", &[], Valid("OK")),
        g(
            "smallest",
            &[
                "--hidden",
                "1",
                "--vocab",
                "2",
                "--seq-len",
                "1",
                "--batch",
                "1",
            ],
            Valid("OK"),
        ),
        g(
            "std 10 fails honestly",
            &["--std", "10"],
            Fail("gradient check failed"),
        ),
        b("threads 0", &["--threads", "0"], Fail("threads = 0")),
        b(
            "threads 10000",
            &["--threads", "10000"],
            Fail("threads = 10000"),
        ),
        b("gemm-n 0", &["--gemm-n", "0"], Fail("gemm-n = 0")),
        b(
            "gemm-n 100000",
            &["--gemm-n", "100000"],
            Fail("gemm-n = 100000"),
        ),
        b("steps 0", &["--steps", "0"], Fail("steps = 0")),
        b(
            "steps over the cap",
            &["--steps", "10000001"],
            Fail("steps = 10000001"),
        ),
        b("steps -1", &["--steps", "-1"], Usage("'-1'")),
        b("config c", &["--config", "c"], Usage("'c'")),
        b("dtype f16", &["--dtype", "f16"], Usage("f16")),
        b(
            "one step tiny gemm",
            &["--steps", "1", "--gemm-n", "1"],
            Valid("chars/s"),
        ),
    ];
    run_all("gradcheck/bench", cases);
}

// ---------------------------------------------------------------------------------------
// Concurrency, signals, determinism

/// A case directory with the fixtures.
fn workspace() -> TempDir {
    let tmp = TempDir::with_prefix_in("hostile-", env!("CARGO_TARGET_TMPDIR")).unwrap();
    copy_tree(fixture(), tmp.path());
    tmp
}

/// `charrnn train --resume run` (or `args`) in the background, its stdout and stderr in
/// files, once it has printed its first line.
fn background(dir: &Path, argv: &[&str]) -> (Child, PathBuf, PathBuf) {
    let out = dir.join("bg.stdout");
    let err = dir.join("bg.stderr");
    let child = Command::new(cargo_bin("charrnn"))
        .current_dir(dir)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while fs::read_to_string(&out).unwrap().lines().next().is_none() {
        assert!(started.elapsed() < TIMEOUT, "no first line from {argv:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, out, err)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends `sig` to a training process after its first line and about a second, and checks
/// what a stopped run must leave: the exit code, one error line naming the signal and the
/// step N, a loadable checkpoint at step N, history rows up to N and the loss curve.
fn interrupt(argv: &[&str], run: &str, sig: &str, code: i32) {
    let tmp = workspace();
    let dir = tmp.path();
    let (mut child, out, err) = background(dir, argv);
    std::thread::sleep(Duration::from_millis(1000));
    let before_png = fs::metadata(dir.join(run).join("loss.png"))
        .ok()
        .map(|m| m.modified().unwrap());
    signal(&child, sig);
    let status = wait(&mut child, sig).unwrap();
    let stderr = fs::read_to_string(&err).unwrap();
    let stdout = fs::read_to_string(&out).unwrap();
    assert_eq!(status.code(), Some(code), "{sig}: {status}\n{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let prefix = format!("error: interrupted by SIG{sig} at step ");
    assert!(stderr.starts_with(&prefix), "{stderr}");
    let step: u64 = stderr[prefix.len()..]
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stderr.contains(&format!("the checkpoint is in {run}")),
        "{stderr}"
    );
    assert!(non_finite(&stdout).is_none(), "{stdout}");
    assert!(stdout.contains(&format!("(to step {step})")), "{stdout}");
    let ckpt = Checkpoint::load(&dir.join(run).join("checkpoint.json")).unwrap();
    assert_eq!(ckpt.state.step, step);
    let history = fs::read_to_string(dir.join(run).join("history.csv")).unwrap();
    let last: u64 = history
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last <= step, "history row {last} after step {step}");
    let png = dir.join(run).join("loss.png");
    is_png(&png);
    let now = fs::metadata(&png).unwrap().modified().unwrap();
    assert!(
        before_png.is_none_or(|t| now > t),
        "loss.png was not redrawn"
    );
    // The checkpoint left behind evaluates.
    let eval = Command::new(cargo_bin("charrnn"))
        .current_dir(dir)
        .args(["eval", "--checkpoint", run, "--json"])
        .output()
        .unwrap();
    assert!(eval.status.success(), "{eval:?}");
}

#[test]
fn sigint_while_resuming_saves_and_exits_130() {
    interrupt(
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "100000000",
            "--checkpoint-every",
            "1000000",
        ],
        "run",
        "INT",
        130,
    );
}

#[test]
fn sigterm_during_a_fresh_run_saves_and_exits_143() {
    interrupt(
        &[
            "train",
            "--out",
            "fresh",
            "--hidden",
            "8",
            "--steps",
            "100000000",
            "--sample-every",
            "0",
        ],
        "fresh",
        "TERM",
        143,
    );
}

#[test]
fn a_second_trainer_on_a_busy_run_is_refused() {
    let tmp = workspace();
    let dir = tmp.path();
    let (mut first, _, err) = background(
        dir,
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "100000000",
            "--checkpoint-every",
            "1000000",
        ],
    );
    for argv in [
        &["train", "--resume", "run", "--steps", "200"][..],
        &["train", "--resume", "run/checkpoint.json", "--steps", "200"],
    ] {
        let second = Command::new(cargo_bin("charrnn"))
            .current_dir(dir)
            .args(argv)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: run is in use"), "{stderr}");
    }
    // The first goes on, and stops cleanly.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first trainer stopped"
    );
    signal(&first, "TERM");
    let status = wait(&mut first, "first trainer").unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "{}",
        fs::read_to_string(err).unwrap()
    );
    Checkpoint::load(&dir.join("run/checkpoint.json")).unwrap();
}

#[test]
fn resumed_checkpoints_are_byte_identical() {
    let tmp = workspace();
    let dir = tmp.path();
    for run in ["run", "s32"] {
        let mut saved = Vec::new();
        for copy in ["a", "b"] {
            let target = dir.join(format!("{run}-{copy}"));
            copy_tree(&dir.join(run), &target);
            let out = Command::new(cargo_bin("charrnn"))
                .current_dir(dir)
                .args(["train", "--resume"])
                .arg(&target)
                .args([
                    "--steps",
                    "27",
                    "--checkpoint-every",
                    "4",
                    "--sample-every",
                    "5",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            saved.push(fs::read(target.join("checkpoint.json")).unwrap());
        }
        assert!(
            saved[0] == saved[1],
            "{run}: two identical resumes saved different checkpoints"
        );
    }
}
