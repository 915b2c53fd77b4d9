//! The one policy for every file `charrnn` writes.
//!
//! Before a command writes anything it asks [`Outputs::file`] (or [`Outputs::run_file`] for the
//! files of a run directory) where the bytes may go. A target is accepted when it is
//!
//! - a new path in an existing directory, or
//! - an existing regular file that is not one of the command's inputs, replaced only with
//!   `--force` (the tool's own files in a run directory excepted: see [`Outputs::run_file`]).
//!
//! A symbolic link is followed to its final target, and that target is checked and written
//! (so the link keeps pointing at the new file). Directories, devices, FIFOs and sockets are
//! refused, with or without `--force`, and so is any input of the same command, compared by
//! device and inode so that another spelling of the same file is caught too.
//!
//! The write itself is atomic (`rnn_engine::write_atomically`): a temporary file next to the
//! target, flushed to disk and renamed over it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The inputs of one command and its `--force`: what it must never overwrite, and whether
/// it may replace existing files.
#[derive(Debug, Default)]
pub struct Outputs {
    force: bool,
    /// (flag, path, identity) of every input file that exists.
    inputs: Vec<(String, PathBuf, FileId)>,
}

/// A file's identity: its device and inode number.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        // Without inode numbers, the canonical path stands in for the identity.
        let canonical = fs::canonicalize(path).ok()?;
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        canonical.hash(&mut h);
        Some((0, h.finish()))
    }
}

/// What a path is, for messages.
pub fn kind_of(meta: &fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

impl Outputs {
    /// A policy that replaces existing files only when `force` is set.
    pub fn new(force: bool) -> Self {
        Outputs {
            force,
            inputs: Vec::new(),
        }
    }

    /// Records an input of the command (named by its flag, for messages), so that no output
    /// replaces it. Paths that do not exist are ignored.
    pub fn input(mut self, flag: &str, path: &Path) -> Self {
        if let Some(id) = file_id(path) {
            self.inputs.push((flag.to_string(), path.to_path_buf(), id));
        }
        self
    }

    /// Where a file named on the command line (by `flag`) may be written: the path itself,
    /// or the final target of a symbolic link. Errors name the flag and the path.
    pub fn file(&self, flag: &str, path: &Path) -> Result<PathBuf> {
        self.check(flag, path, self.force)
    }

    /// Where one of the tool's own files in a run directory (a checkpoint, history.csv,
    /// a plot drawn at a default path) may be written: as [`Outputs::file`], but an existing
    /// regular file is replaced without `--force`, since rewriting these files is what the
    /// command is for.
    pub fn run_file(&self, path: &Path) -> Result<PathBuf> {
        self.check("run directory", path, true)
    }

    fn check(&self, flag: &str, path: &Path, replace: bool) -> Result<PathBuf> {
        let shown = path.display();
        if path.as_os_str().is_empty() {
            bail!("{flag}: the path is empty");
        }
        let link = fs::symlink_metadata(path).ok();
        let target = match &link {
            Some(meta) if meta.file_type().is_symlink() => {
                fs::canonicalize(path).with_context(|| {
                    format!("{flag} {shown}: a symbolic link whose target cannot be resolved")
                })?
            }
            _ => path.to_path_buf(),
        };
        let meta = match fs::metadata(&target) {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return self.new_path(flag, path);
            }
            Err(e) => return Err(e).with_context(|| format!("{flag} {shown}: cannot inspect")),
        };
        if !meta.is_file() {
            let via = if target == path {
                String::new()
            } else {
                format!(" (the target of a link, {})", target.display())
            };
            bail!(
                "{flag} {shown}: is {}{via}; name a regular file or a new path",
                kind_of(&meta)
            );
        }
        if let Some(id) = file_id(&target)
            && let Some((input_flag, input, _)) = self.inputs.iter().find(|i| i.2 == id)
        {
            bail!(
                "{flag} {shown}: is this command's input ({input_flag} {}); choose another path",
                input.display()
            );
        }
        if !replace {
            bail!("{flag} {shown}: already exists; pass --force to replace it");
        }
        Ok(target)
    }

    /// A path that does not exist yet: its directory must.
    fn new_path(&self, flag: &str, path: &Path) -> Result<PathBuf> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(path.to_path_buf()),
            Ok(meta) => bail!(
                "{flag} {}: {} is {}, not a directory",
                path.display(),
                dir.display(),
                kind_of(&meta)
            ),
            Err(_) => bail!(
                "{flag} {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ),
        }
    }
}

/// Refuses an input that exists but is not a regular file (after following links): reading
/// a FIFO without a writer blocks forever, and a device may never end. `label` names the
/// input (a flag, or nothing when the path says enough).
pub fn regular_input(label: &str, path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => bail!(
            "{label}{}: is {}, not a regular file",
            path.display(),
            kind_of(&meta)
        ),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `target` (a path [`Outputs`] accepted) atomically.
pub fn write_bytes(target: &Path, bytes: &[u8]) -> Result<()> {
    rnn_engine::write_atomically(target, |w| w.write_all(bytes))
        .with_context(|| format!("cannot write {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<PathBuf>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn new_paths_are_accepted_and_existing_files_need_force() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new.bin");
        assert_eq!(Outputs::new(false).file("--out", &new).unwrap(), new);
        let old = tmp.path().join("old.bin");
        fs::write(&old, "x").unwrap();
        assert!(err(Outputs::new(false).file("--out", &old)).contains("--force"));
        assert_eq!(Outputs::new(true).file("--out", &old).unwrap(), old);
        assert_eq!(Outputs::new(false).run_file(&old).unwrap(), old);
        let missing = tmp.path().join("no/such/dir/f");
        assert!(err(Outputs::new(true).file("--out", &missing)).contains("does not exist"));
    }

    #[test]
    fn directories_devices_and_inputs_are_refused_even_with_force() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(err(Outputs::new(true).file("--out", tmp.path())).contains("a directory"));
        #[cfg(unix)]
        assert!(err(Outputs::new(true).file("--out", Path::new("/dev/null"))).contains("device"));
        let input = tmp.path().join("in.json");
        fs::write(&input, "{}").unwrap();
        let outputs = Outputs::new(true).input("--checkpoint", &input);
        // Another spelling of the same file is the same file.
        let other = tmp.path().join(".").join("in.json");
        assert!(err(outputs.file("--out", &other)).contains("this command's input"));
        assert!(err(outputs.run_file(&input)).contains("this command's input"));
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_their_target_is_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.png");
        fs::write(&real, "old").unwrap();
        let link = tmp.path().join("link.png");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let target = Outputs::new(true).file("--out", &link).unwrap();
        assert_eq!(target, fs::canonicalize(&real).unwrap());
        write_bytes(&target, b"new").unwrap();
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let to_dev = tmp.path().join("dev");
        std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap();
        assert!(err(Outputs::new(true).file("--out", &to_dev)).contains("a device"));
        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(tmp.path().join("nothing"), &dangling).unwrap();
        assert!(err(Outputs::new(true).file("--out", &dangling)).contains("symbolic link"));
    }
}
