//! Helpers shared by the end-to-end test files.

use std::path::Path;

use assert_cmd::Command;

/// `charrnn` run in `dir`.
pub fn charrnn(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("charrnn").unwrap();
    cmd.current_dir(dir);
    cmd
}

/// Runs `args` and checks a clean failure: exit code 1, one line on stderr starting with
/// "error:", no panic. Returns stderr.
pub fn fails_cleanly(dir: &Path, args: &[&str]) -> String {
    let output = charrnn(dir).args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

/// Runs `args` and checks that it succeeds (stderr shown otherwise). Returns stdout.
#[allow(dead_code)] // not every test file needs it
pub fn succeeds(dir: &Path, args: &[&str]) -> String {
    let out = charrnn(dir).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
