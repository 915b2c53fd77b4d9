//! `cargo xtask notebooks`: install what is missing, prove that failures are detected, then
//! execute every notebook headless through the evcxr Jupyter kernel.
//!
//! What it installs, each step skipped when already done:
//! - the kernel, `evcxr_jupyter` (pinned, `cargo install --locked`, built at opt-level 1:
//!   half the build time, and the notebooks run as fast);
//! - Jupyter's execution pieces (nbclient, nbformat, jupyter_client, pinned) in a virtual
//!   environment under `target/nb-venv`;
//! - the kernelspec, registered under `target/nb-jupyter` (not in the user's home), which
//!   the runner finds through `JUPYTER_PATH`.
//!
//! The notebooks then run, each in a fresh kernel started in its own folder as Jupyter does,
//! by `crates/xtask/run_notebooks.py`: the learners' notebooks in `notebooks/`, whose
//! exercise cells hold stubs (their check cells print a hint), and the solutions copies in
//! `notebooks/solutions/`, whose check cells must print PASS: the runner fails a solutions
//! copy in which one does not, so CI proves that every exercise can be passed. The notebooks
//! of one folder run one after another, as they share that folder's evcxr build directory
//! (see `notebooks/evcxr.toml`); the two folders have separate build directories and run at
//! the same time, one kernel per core (measured: 12 notebooks in 458 s one after another).
//! `tests/tests/notebooks.rs` checks both kinds of check output in the committed notebooks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{self, cargo_bin, cargo_install, root};

const EVCXR_VERSION: &str = "0.22.0";
/// The Python packages of the runner, pinned; nbclient pulls in the rest (pyzmq, tornado, ...).
const PIP_PACKAGES: [&str; 3] = [
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "jupyter_client==8.10.0",
];

const HELP: &str = "\
usage: cargo xtask notebooks [--check] [--no-selftest] [NOTEBOOK...]
       cargo xtask notebooks --expect-failure NOTEBOOK...

Installs evcxr_jupyter and a Python venv with nbclient if missing, registers the kernel,
runs the self-test (the deliberately broken notebooks in crates/xtask/testdata must fail),
then executes the notebooks (default: every notebooks/*.ipynb, then every
notebooks/solutions/*.ipynb, each kernel started in the notebook's folder) and writes them
back in place with their outputs. Fails if any cell fails.

options:
  --check            write the executed notebooks to target/notebooks/ (solutions to
                     target/notebooks/solutions/) instead of in place
  --no-selftest      skip the self-test
  --expect-failure   run only the given notebooks and fail unless each of them fails
  -h, --help         this text

environment:
  PYTHON             the Python that creates the venv (default: python3)
";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    check: bool,
    selftest: bool,
    expect_failure: bool,
    notebooks: Vec<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Args>> {
    let mut parsed = Args {
        selftest: true,
        ..Args::default()
    };
    for arg in args {
        match arg.as_str() {
            "--check" => parsed.check = true,
            "--no-selftest" => parsed.selftest = false,
            "--expect-failure" => parsed.expect_failure = true,
            "-h" | "--help" => return Ok(None),
            flag if flag.starts_with('-') => bail!("unknown option {flag:?}\n{HELP}"),
            path => parsed.notebooks.push(absolute(Path::new(path))?),
        }
    }
    if parsed.expect_failure && parsed.notebooks.is_empty() {
        bail!("--expect-failure needs the notebooks that should fail\n{HELP}");
    }
    Ok(Some(parsed))
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(args) = parse(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    let started = Instant::now();
    let env = setup()?;
    if args.expect_failure {
        env.execute(&args.notebooks, Mode::ExpectFailure)?;
    } else {
        if args.selftest {
            eprintln!("xtask: self-test: each notebook in crates/xtask/testdata must fail");
            env.execute(
                &list_notebooks(&root().join("crates/xtask/testdata"))?,
                Mode::ExpectFailure,
            )?;
        }
        let notebooks = if args.notebooks.is_empty() {
            // The learners' copies, then the solutions: running the solutions proves that
            // every exercise can be passed; running the learners' copies proves that the
            // stubs compile and that their checks fail gracefully, with a hint.
            let mut all = list_notebooks(&root().join("notebooks"))?;
            all.extend(list_notebooks(&root().join("notebooks/solutions"))?);
            all
        } else {
            args.notebooks
        };
        let mode = if args.check {
            Mode::Check
        } else {
            Mode::InPlace
        };
        env.execute(&notebooks, mode)?;
    }
    eprintln!(
        "xtask: notebooks done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where executed notebooks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    InPlace,
    Check,
    ExpectFailure,
}

/// The installed pieces.
#[derive(Debug)]
struct Env {
    python: PathBuf,
    jupyter_path: PathBuf,
    runtime_dir: PathBuf,
}

/// Installs the kernel and the venv when missing and registers the kernelspec.
fn setup() -> Result<Env> {
    let target = root().join("target");
    // The kernel: skipped in 0.1 s when `cargo install --list` shows the version.
    cargo_install(
        "evcxr_jupyter",
        EVCXR_VERSION,
        &[("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")],
    )?;
    let evcxr = cargo_bin("evcxr_jupyter");

    // The Python side, in a venv of its own.
    let python = util::python_venv(&target.join("nb-venv"), &PIP_PACKAGES)?;

    // The kernelspec: `evcxr_jupyter --install` writes $XDG_DATA_HOME/jupyter/kernels/rust
    // with the binary's absolute path. Keeping it under target/ leaves the user's own
    // Jupyter alone and works the same in CI; the runner looks there through JUPYTER_PATH.
    let data_home = target.join("nb-jupyter");
    util::run(
        Command::new(&evcxr)
            .arg("--install")
            .env("XDG_DATA_HOME", &data_home),
    )?;
    let jupyter_path = data_home.join("jupyter");
    let spec = jupyter_path.join("kernels/rust/kernel.json");
    if !spec.is_file() {
        bail!(
            "evcxr_jupyter --install did not write {} (does it honour XDG_DATA_HOME?)",
            spec.display()
        );
    }
    Ok(Env {
        python,
        runtime_dir: data_home.join("runtime"),
        jupyter_path,
    })
}

impl Env {
    /// Runs `notebooks`: those of one folder one after another (they share its evcxr build
    /// directory), the folders at the same time, each through its own `run_notebooks.py`.
    /// Each folder's output is printed whole when it finishes, so that logs do not mix.
    fn execute(&self, notebooks: &[PathBuf], mode: Mode) -> Result<()> {
        let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
        for nb in notebooks {
            let dir = nb.parent().map(Path::to_path_buf).unwrap_or_default();
            match folders.iter_mut().find(|(d, _)| *d == dir) {
                Some((_, list)) => list.push(nb.clone()),
                None => folders.push((dir, vec![nb.clone()])),
            }
        }
        // The self-test notebooks all run in notebooks/ (one build directory).
        if folders.len() < 2 || mode == Mode::ExpectFailure {
            return util::run(&mut self.command(notebooks, mode)).with_context(|| failure(mode));
        }
        let logs = root().join("target/notebooks/logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        let mut running = Vec::new();
        for (i, (dir, list)) in folders.iter().enumerate() {
            let log = logs.join(format!("{i}.txt"));
            let file = std::fs::File::create(&log)
                .with_context(|| format!("cannot create {}", log.display()))?;
            let mut cmd = self.command(list, mode);
            cmd.stdout(file.try_clone()?).stderr(file);
            eprintln!("xtask: $ {cmd:?} (output in {})", log.display());
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", self.python.display()))?;
            running.push((dir, log, child));
        }
        let mut failed = Vec::new();
        for (dir, log, mut child) in running {
            let status = child.wait()?;
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("--- notebooks in {}:\n{printed}", dir.display());
            if !status.success() {
                failed.push(format!("{} ({status})", dir.display()));
            }
        }
        if !failed.is_empty() {
            bail!("{}: {}", failure(mode), failed.join(", "));
        }
        Ok(())
    }

    /// One `run_notebooks.py` over `notebooks`.
    fn command(&self, notebooks: &[PathBuf], mode: Mode) -> Command {
        let root = root();
        let target = root.join("target");
        let mut cmd = Command::new(&self.python);
        cmd.arg(root.join("crates/xtask/run_notebooks.py"))
            .arg("--failed-dir")
            .arg(target.join("notebooks/failed"))
            .arg("--base")
            .arg(root.join("notebooks"));
        match mode {
            // Each kernel starts in its notebook's folder, as in Jupyter: `:dep` and data
            // paths are relative to it, and it holds evcxr.toml (panics fail the cell; the
            // shared build directory). notebooks/solutions has its own evcxr.toml.
            Mode::InPlace => {}
            Mode::Check => {
                cmd.arg("--out-dir").arg(target.join("notebooks"));
            }
            // The self-test notebooks live in crates/xtask/testdata, which has no
            // evcxr.toml: they run in notebooks/ so that its settings apply.
            Mode::ExpectFailure => {
                cmd.arg("--expect-failure")
                    .arg("--kernel-cwd")
                    .arg(root.join("notebooks"));
            }
        }
        cmd.args(notebooks)
            .env("JUPYTER_PATH", &self.jupyter_path)
            .env("JUPYTER_RUNTIME_DIR", &self.runtime_dir)
            .env("JUPYTER_PLATFORM_DIRS", "1")
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }
}

/// What a failed run of `mode` means.
fn failure(mode: Mode) -> &'static str {
    match mode {
        Mode::ExpectFailure => "a notebook that should fail did not (see above)",
        _ => "a notebook failed (see above; its executed copy is in target/notebooks/failed)",
    }
}

/// The `.ipynb` files of `dir`, sorted by name.
fn list_notebooks(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no notebooks in {}", dir.display());
    }
    Ok(found)
}

/// `path` made absolute against the current directory (cargo runs the xtask from wherever
/// the user is), checked to exist.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    if !abs.is_file() {
        bail!("no such notebook: {}", path.display());
    }
    Ok(abs)
}
