//! Deferred deletion of removed containers' directories.
//!
//! Removing a container must be quick for the caller: `berth run --rm` returns when the
//! container is gone, not when its writable layer has been erased block by block. Deleting a
//! tree is slow on some filesystems (ext4 mounted with `discard` issues a synchronous discard
//! for every freed block: measured as the largest wait of `run --rm` on such a host), so the
//! container directory is renamed into `<root>/trash/` — one rename, after which the container
//! no longer exists — and deleted by a detached cleaner process. A cleaner that dies leaves its
//! entries for the next one, which empties the whole trash.

use crate::rootfs::remove_tree;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub struct Trash {
    dir: PathBuf,
}

impl Trash {
    pub fn new(root: &Path) -> Trash {
        Trash {
            dir: root.join("trash"),
        }
    }

    /// Moves `dir` into the trash, for [`empty_later`](Self::empty_later) to delete: one
    /// rename, after which `dir` is gone. `Ok(false)`: there was no `dir`. An error (another
    /// filesystem, say) leaves `dir` where it is.
    pub fn put(&self, dir: &Path) -> io::Result<bool> {
        if fs::symlink_metadata(dir).is_err() {
            return Ok(false);
        }
        let name = format!(
            "{}-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("dir"),
            crate::fsutil::random_suffix()
        );
        fs::create_dir_all(&self.dir).and_then(|()| fs::rename(dir, self.dir.join(name)))?;
        Ok(true)
    }

    /// Deletes the trash's contents in a detached cleaner, or here and now in a multi-threaded
    /// process (forking one could copy a held allocator lock into the child).
    pub fn empty_later(&self) {
        if single_threaded() {
            self.empty_in_background();
        } else {
            let _ = self.empty_now();
        }
    }

    /// Deletes everything in the trash, here and now.
    pub fn empty_now(&self) -> io::Result<()> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            // A concurrent cleaner may be deleting the same entry: a vanished file is fine.
            let _ = remove_now(&entry.path());
        }
        Ok(())
    }

    /// Empties the trash in a child process detached from the caller: it holds none of the
    /// caller's files (so a pipe reader sees EOF and a container lock is not kept) and runs in
    /// a session of its own (so a terminal's hangup or ^C does not stop it). One fork, not the
    /// classic two: the second fork and the wait for the intermediate process cost ~0.2 ms of
    /// every `rm`, and the caller (a CLI or a detached monitor about to exit) leaves the
    /// cleaner to init as soon as it exits; until then a finished cleaner is a zombie of the
    /// caller, which never waits for children it does not know.
    fn empty_in_background(&self) {
        // SAFETY: fork in a single-threaded process (checked by the caller); the child is then
        // the only thread of its own process and ends in _exit.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: setsid takes no pointers; the child is no process group leader.
                unsafe { libc::setsid() };
                detach_stdio();
                let _ = self.empty_now();
                // SAFETY: ends the cleaner without running the parent's destructors twice.
                unsafe { libc::_exit(0) }
            }
            pid if pid > 0 => {}
            _ => {
                let _ = self.empty_now();
            }
        }
    }
}

fn remove_now(path: &Path) -> io::Result<()> {
    remove_tree(path).map_err(io::Error::other)
}

/// Points fds 0–2 at /dev/null and closes everything else.
fn detach_stdio() {
    // SAFETY: open/dup2/close_range on fds this process owns; no memory is passed but a
    // NUL-terminated literal.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

fn single_threaded() -> bool {
    fs::read_dir("/proc/self/task")
        .map(|d| d.count() == 1)
        .unwrap_or(false)
}
