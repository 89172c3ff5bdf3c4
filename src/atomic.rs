//! Output files: checked before any work is done, written atomically, and never leaving a
//! temporary file behind.
//!
//! A write goes to `.NAME.tmp-PID` beside the target, is synced and renamed over the target, so
//! a crash never leaves a half-written file. The temporary file is removed when the write
//! fails, and [`exit_removing_pending`] removes the ones still being written (the command line calls
//! it when Ctrl-C ends the process). A process killed outright (`kill -9`) cannot clean up:
//! the next write to the same target removes temporaries whose process no longer runs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written now.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// An output path that cannot be written, found before the work that would fill it.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutputError {
    /// The folder is missing or not writable, or writing failed.
    Io {
        /// The output.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output is a folder.
    IsFolder {
        /// The output.
        path: PathBuf,
    },
    /// The output is one of the command's inputs, which the write would destroy.
    IsInput {
        /// The output.
        path: PathBuf,
        /// What the command reads from it.
        input: &'static str,
    },
    /// Two outputs of one command name the same file.
    Twice {
        /// The output.
        path: PathBuf,
    },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(
                f,
                "cannot write {}: {source}; choose a path in an existing, writable folder",
                path.display()
            ),
            Self::IsFolder { path } => write!(
                f,
                "{} is a folder; give a file name for the output",
                path.display()
            ),
            Self::IsInput { path, input } => write!(
                f,
                "{} is also the {input} this command reads; writing it would destroy it, choose another output path",
                path.display()
            ),
            Self::Twice { path } => write!(
                f,
                "{} is given for two outputs; give each output its own path",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where `path` will live, for comparing outputs and inputs: its folder resolved (links,
/// `..`) and its file name; `None` if the folder does not exist.
fn identity(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let dir = folder(path).canonicalize().ok()?;
    Some(dir.join(path.file_name()?))
}

/// The folder `path` is written into (`.` for a bare file name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before any work, that every output in `outputs` can be written: not a folder, in an
/// existing writable folder (probed with a file that is removed again), not one of `inputs`
/// (each with what the command reads from it) and not named twice.
///
/// # Errors
/// The first [`OutputError`] found.
///
/// # Examples
/// ```
/// use std::path::Path;
/// use netmorph::atomic::{check_outputs, OutputError};
/// let dir = std::env::temp_dir();
/// let model = dir.join("netmorph-doc-model.safetensors");
/// std::fs::write(&model, b"model").unwrap();
/// let err = check_outputs(&[&model], &[(&model, "model")]).unwrap_err();
/// assert!(matches!(err, OutputError::IsInput { .. }));
/// assert!(check_outputs(&[&dir.join("netmorph-doc-out.npy")], &[(&model, "model")]).is_ok());
/// assert!(matches!(check_outputs(&[&dir], &[]), Err(OutputError::IsFolder { .. })));
/// std::fs::remove_file(&model).unwrap();
/// ```
pub fn check_outputs(
    outputs: &[&Path],
    inputs: &[(&Path, &'static str)],
) -> Result<(), OutputError> {
    let mut seen = Vec::with_capacity(outputs.len());
    for &path in outputs {
        let meta = std::fs::metadata(path);
        if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            return Err(OutputError::IsFolder {
                path: path.to_path_buf(),
            });
        }
        let io = |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        let id = identity(path).ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", folder(path).display()),
            ))
        })?;
        for &(input, what) in inputs {
            if identity(input).is_some_and(|i| i == id) {
                return Err(OutputError::IsInput {
                    path: path.to_path_buf(),
                    input: what,
                });
            }
        }
        if seen.contains(&id) {
            return Err(OutputError::Twice {
                path: path.to_path_buf(),
            });
        }
        // Devices and pipes are written in place (see `write_atomic`); a regular target or a
        // new one needs a writable folder.
        if meta.as_ref().is_err() || meta.as_ref().is_ok_and(std::fs::Metadata::is_file) {
            // A `.tmp-` name, listed while it exists: Ctrl-C and later writes clean it up.
            let probe = temporary(path, "tmp");
            pending(|list| {
                std::fs::File::create(&probe)?;
                list.push(probe.clone());
                Ok(())
            })
            .map_err(io)?;
            let removed = std::fs::remove_file(&probe);
            pending(|list| list.retain(|p| *p != probe));
            removed.map_err(io)?;
        }
        seen.push(id);
    }
    Ok(())
}

/// `.NAME.KIND-PID` beside `path`.
fn temporary(path: &Path, kind: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{kind}-{}", std::process::id()))
}

/// Writes `data` to `path` through a temporary file, fsync and a rename. A target that exists
/// and is not a regular file or a folder (`/dev/null`, a FIFO) is written in place: a rename
/// would replace the device with a file. Temporaries of `path` left by processes that no
/// longer run are removed first.
///
/// # Errors
/// The OS error; no temporary file survives it.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::write(path, data);
    }
    // A symbolic link is written through: its target is replaced, the link stays.
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => path.canonicalize().ok(),
        _ => None,
    };
    let path = resolved.as_deref().unwrap_or(path);
    remove_stale(path);
    let tmp = temporary(path, "tmp");
    // Created and listed in one step, so `exit_removing_pending` sees every temporary.
    let created = pending(|list| {
        let f = std::fs::File::create(&tmp)?;
        list.push(tmp.clone());
        Ok(f)
    });
    let result = created.and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    pending(|list| list.retain(|p| *p != tmp));
    result
}

/// [`write_atomic`], its error an [`OutputError`] naming `path`.
///
/// # Errors
/// [`OutputError::Io`].
pub fn write(path: &Path, data: &[u8]) -> Result<(), OutputError> {
    write_atomic(path, data).map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn pending<R>(f: impl FnOnce(&mut Vec<PathBuf>) -> R) -> R {
    f(&mut lock())
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves it as it was; it is still the right list.
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Ends the process with `code` (Ctrl-C) after removing the temporary files of writes in
/// progress; their targets stay as they were. The list stays locked until the process is
/// gone, so no other thread starts a new temporary meanwhile.
pub fn exit_removing_pending(code: i32) -> ! {
    let mut list = lock();
    for tmp in list.drain(..) {
        let _ = std::fs::remove_file(tmp);
    }
    std::process::exit(code)
}

/// Removes `.NAME.tmp-PID` files beside `path` whose process no longer runs.
fn remove_stale(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(folder(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let pid = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !running(p)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (unknown platforms: assume it does, so nothing is removed).
fn running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netmorph-atomic-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let d = dir("stale");
        let target = d.join("m.safetensors");
        // pid_max on Linux is at most 2^22: this process cannot exist.
        let dead = d.join(".m.safetensors.tmp-4194999");
        let mine = d.join(format!(".m.safetensors.tmp-{}", std::process::id()));
        let other = d.join(".other.safetensors.tmp-4194999");
        for f in [&dead, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_atomic(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert!(!dead.exists(), "a dead process's temporary survived");
        assert!(other.exists(), "another target's temporary was removed");
        assert!(!mine.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn temporaries_of_a_live_process_stay() {
        let d = dir("live");
        let target = d.join("m.safetensors");
        // pid 1 always runs.
        let live = d.join(".m.safetensors.tmp-1");
        std::fs::write(&live, b"partial").unwrap();
        write_atomic(&target, b"whole").unwrap();
        assert!(live.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn outputs_are_checked_before_work() {
        let d = dir("check");
        let a = d.join("a.bin");
        std::fs::write(&a, b"x").unwrap();
        let twice = check_outputs(&[&d.join("o"), &d.join("./o")], &[]).unwrap_err();
        assert!(matches!(twice, OutputError::Twice { .. }), "{twice}");
        let missing = check_outputs(&[&d.join("nope/o")], &[]).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let input = check_outputs(&[&d.join("./a.bin")], &[(&a, "input array")]);
        assert!(
            matches!(input, Err(OutputError::IsInput { .. })),
            "{input:?}"
        );
        assert!(check_outputs(&[Path::new("/dev/null")], &[]).is_ok());
        assert!(
            std::fs::read_dir(&d).unwrap().count() == 1,
            "a probe file survived"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
