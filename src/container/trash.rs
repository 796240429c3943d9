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

    /// Moves `dir` into the trash and starts a cleaner; a directory that is already gone is
    /// fine. When the trash cannot be used (another filesystem, say) the tree is deleted here.
    pub fn discard(&self, dir: &Path) -> io::Result<()> {
        if fs::symlink_metadata(dir).is_err() {
            return Ok(());
        }
        let name = format!(
            "{}-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("dir"),
            crate::fsutil::random_suffix()
        );
        let moved =
            fs::create_dir_all(&self.dir).and_then(|()| fs::rename(dir, self.dir.join(name)));
        if moved.is_err() || !single_threaded() {
            // Forking a multi-threaded process could copy a held allocator lock into the child.
            let _ = moved;
            return remove_now(dir).and_then(|()| self.empty_now());
        }
        self.empty_in_background();
        Ok(())
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

    /// Empties the trash in a grandchild process detached from the caller: it holds none of the
    /// caller's files (so a pipe reader sees EOF and a container lock is not kept) and is not
    /// the caller's child (so nobody has to reap it).
    fn empty_in_background(&self) {
        // SAFETY: fork in a single-threaded process (checked by the caller); the child only
        // calls async-signal-safe functions until it forks again, and the grandchild is then
        // the only thread of its own process.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: setsid/fork/_exit take no pointers.
                unsafe {
                    libc::setsid();
                    if libc::fork() != 0 {
                        libc::_exit(0);
                    }
                }
                detach_stdio();
                let _ = self.empty_now();
                // SAFETY: ends the cleaner without running the parent's destructors twice.
                unsafe { libc::_exit(0) }
            }
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: reaps the intermediate child, which exits at once.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
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
