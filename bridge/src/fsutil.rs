//! Crash-safe file replacement shared by the lease and network stores.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The prefix of the staging files of `path` (`.<name>.tmp-`), for sweeping after a crash.
pub(crate) fn tmp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

fn tmp_path(path: &Path) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{}{}-{}", tmp_prefix(path), std::process::id(), n))
}

/// Replace `path` with `data` atomically: write a staging file beside it, fsync it, rename it
/// over `path`, fsync the directory. A crash at any point leaves either the old or the new
/// content under `path` (plus, at worst, a staging file that [`sweep_tmp`] removes).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_hooked(path, data, || Ok(()))
}

/// [`write_atomic`] with a hook run after the staging file is durable and before the rename;
/// tests use it to simulate a crash at the worst moment.
pub(crate) fn write_atomic_hooked(
    path: &Path,
    data: &[u8],
    before_rename: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        before_rename()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Remove staging files left beside `path` by a writer that crashed.
pub(crate) fn sweep_tmp(path: &Path) {
    let (Some(dir), prefix) = (path.parent(), tmp_prefix(path)) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_staging() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn crash_before_rename_keeps_old_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_hooked(&p, b"new", || Err(io::Error::other("crash"))).unwrap_err();
        assert_eq!(err.to_string(), "crash");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        // a real crash leaves the staging file behind: sweep removes it
        fs::write(
            d.path().join(format!("{}999-0", tmp_prefix(&p))),
            b"{partial",
        )
        .unwrap();
        sweep_tmp(&p);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }
}
