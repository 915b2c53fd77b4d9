//! Small helpers shared by the tasks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of `crates/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask sits two levels below the root")
        .to_path_buf()
}

/// Runs a command, echoing it, and fails with its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

/// Runs a command, echoing it, and returns its standard output (stderr passes through).
/// Fails with the exit status.
pub fn output(cmd: &mut Command) -> Result<String> {
    let (text, status) = output_any_status(cmd)?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(text)
}

/// Like [`output`], but the exit status is returned instead of failing on it.
pub fn output_any_status(cmd: &mut Command) -> Result<(String, ExitStatus)> {
    eprintln!("xtask: $ {cmd:?}");
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let text = String::from_utf8(out.stdout)
        .with_context(|| format!("{:?} printed invalid UTF-8", cmd.get_program()))?;
    Ok((text, out.status))
}

/// Installs `krate` at exactly `version` with `cargo install --locked`, unless
/// `cargo install --list` already shows that version (no network needed to check).
/// `env` is extra environment for the build (for example a lower opt-level).
pub fn cargo_install(krate: &str, version: &str, env: &[(&str, &str)]) -> Result<()> {
    let list = Command::new("cargo")
        .args(["install", "--list"])
        .output()
        .context("cannot run cargo install --list")?;
    let listed = String::from_utf8_lossy(&list.stdout);
    let want = format!("{krate} v{version}:");
    if listed.lines().any(|l| l.starts_with(&want)) {
        eprintln!("xtask: {krate} {version} already installed");
        return Ok(());
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["install", "--locked", krate, "--version", version]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The path of a binary installed by `cargo install`: in `$CARGO_INSTALL_ROOT/bin`,
/// `$CARGO_HOME/bin` or `~/.cargo/bin`, whichever has it (CI's PATH need not include them),
/// or else the bare name, looked up on the PATH.
pub fn cargo_bin(name: &str) -> PathBuf {
    let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
    [
        var("CARGO_INSTALL_ROOT"),
        var("CARGO_HOME"),
        var("HOME").map(|h| h.join(".cargo")),
    ]
    .into_iter()
    .flatten()
    .map(|dir| dir.join("bin").join(name))
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from(name))
}

/// The Cargo target directory: `CARGO_TARGET_DIR`, or `target/` under the root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The Python packages of the PyTorch environment that `cargo xtask autograd` and `cargo
/// xtask interop` share, pinned.
pub const TORCH_PACKAGES: &[&str] = &["torch==2.15.0", "numpy==2.4.6", "safetensors==0.8.0"];

/// A Python with [`TORCH_PACKAGES`], shared by the tasks that need PyTorch (one install of
/// several GB, not one per task): `TORCH_PYTHON` if set (or, as before, `AUTOGRAD_PYTHON`),
/// an existing interpreter used as it is (a warning if its versions differ from the pins);
/// else the virtual environment `torch-venv` in the target directory, created and filled
/// with pip only when the pinned packages are missing.
pub fn torch_python() -> Result<PathBuf> {
    for var in ["TORCH_PYTHON", "AUTOGRAD_PYTHON"] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let python = PathBuf::from(p);
            eprintln!("xtask: using {var}={}", python.display());
            if !has_packages(&python, TORCH_PACKAGES) {
                eprintln!(
                    "xtask: warning: {} lacks one of {} (or has other versions)",
                    python.display(),
                    TORCH_PACKAGES.join(" ")
                );
            }
            return Ok(python);
        }
    }
    python_venv(&target_dir().join("torch-venv"), TORCH_PACKAGES)
}

/// The Python of a virtual environment at `venv` holding exactly the pinned `packages`
/// (`name==version`), created and filled with pip only when they are missing. `PYTHON`
/// chooses the interpreter that creates it (default `python3`).
pub fn python_venv(venv: &Path, packages: &[&str]) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    if has_packages(&python, packages) {
        eprintln!("xtask: {} has {}", venv.display(), packages.join(" "));
        return Ok(python);
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    run(Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            // The wheels (several GB for torch and its CUDA libraries) would otherwise stay
            // in pip's cache next to the installed copy.
            "--no-cache-dir",
        ])
        .args(packages))?;
    Ok(python)
}

/// Whether `python` exists and has every pinned package at its version.
fn has_packages(python: &Path, packages: &[&str]) -> bool {
    let check = "import importlib.metadata as m, sys; \
                 want = dict(a.split('==') for a in sys.argv[1:]); \
                 sys.exit(any(m.version(k) != v for k, v in want.items()))";
    python.is_file()
        && Command::new(python)
            .args(["-c", check])
            .args(packages)
            .output()
            .is_ok_and(|o| o.status.success())
}
