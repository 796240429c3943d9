//! A file reader that reuses one path buffer and one data buffer for every read.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Reads whole small files (cgroupfs, procfs, sysfs) into a reused buffer.
///
/// After the first few reads have grown the buffers, a read costs `open`, one or two `read`s
/// and `close`, and no allocation: the path is assembled in a reused byte buffer (std's
/// `File::open` converts short paths to a C string on the stack), and the data buffer is sized
/// once and doubled only when a file does not fit. `read_to_end` is avoided on purpose: it
/// `statx`es the file for a size hint, which is a wasted syscall on pseudo files of size 0/4096.
#[derive(Debug)]
pub struct FileReader {
    buf: Vec<u8>,
    path: Vec<u8>,
    /// Reads that failed for a reason other than "not there" (see [`FileReader::read`]).
    pub errors: u64,
}

impl Default for FileReader {
    fn default() -> Self {
        FileReader::new()
    }
}

impl FileReader {
    pub fn new() -> FileReader {
        FileReader {
            buf: vec![0; 16 * 1024],
            path: Vec::with_capacity(512),
            errors: 0,
        }
    }

    /// Reads `dir/file`. `None` when it cannot be read; a missing file (`ENOENT`, or `ENODEV`
    /// and `ESRCH` of a cgroup or process that vanished meanwhile) is normal and not counted,
    /// other errors are counted in `errors`.
    pub fn read(&mut self, dir: &Path, file: &str) -> Option<&[u8]> {
        self.path.clear();
        self.path.extend_from_slice(dir.as_os_str().as_bytes());
        self.path.push(b'/');
        self.path.extend_from_slice(file.as_bytes());
        self.read_current()
    }

    /// Reads `/proc/<pid>/<file>` below `proc_root`.
    pub fn read_proc(&mut self, proc_root: &Path, pid: i32, file: &str) -> Option<&[u8]> {
        self.path.clear();
        self.path
            .extend_from_slice(proc_root.as_os_str().as_bytes());
        self.path.push(b'/');
        push_decimal(&mut self.path, u64::from(pid.unsigned_abs()));
        self.path.push(b'/');
        self.path.extend_from_slice(file.as_bytes());
        self.read_current()
    }

    /// Reads a whole path.
    pub fn read_path(&mut self, path: &Path) -> Option<&[u8]> {
        self.path.clear();
        self.path.extend_from_slice(path.as_os_str().as_bytes());
        self.read_current()
    }

    /// Like [`FileReader::read`], but reports whether the failure was "not there".
    pub fn read_or_missing(&mut self, dir: &Path, file: &str) -> Result<&[u8], bool> {
        self.path.clear();
        self.path.extend_from_slice(dir.as_os_str().as_bytes());
        self.path.push(b'/');
        self.path.extend_from_slice(file.as_bytes());
        match self.fill() {
            Ok(n) => Ok(&self.buf[..n]),
            Err(e) => {
                let missing = is_missing(&e);
                if !missing {
                    self.errors += 1;
                }
                Err(missing)
            }
        }
    }

    fn read_current(&mut self) -> Option<&[u8]> {
        match self.fill() {
            Ok(n) => Some(&self.buf[..n]),
            Err(e) => {
                if !is_missing(&e) {
                    self.errors += 1;
                }
                None
            }
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut f = File::open(Path::new(OsStr::from_bytes(&self.path)))?;
        let mut n = 0;
        loop {
            if n == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            match f.read(&mut self.buf[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::ENOTDIR)
    )
}

/// Appends the decimal digits of `v`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; 20];
    out.extend_from_slice(decimal_digits(&mut tmp, v));
}

/// Writes the decimal digits of `v` at the end of `buf` and returns them (ASCII).
pub(crate) fn decimal_digits(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_and_miss() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b'7'; 40_000];
        std::fs::write(dir.path().join("big"), &big).unwrap();
        std::fs::write(dir.path().join("small"), b"12\n").unwrap();
        let mut r = FileReader::new();
        assert_eq!(r.read(dir.path(), "big").unwrap(), &big[..]);
        assert_eq!(r.read(dir.path(), "small").unwrap(), b"12\n");
        assert!(r.read(dir.path(), "absent").is_none());
        assert_eq!(r.errors, 0);
        assert_eq!(r.read_or_missing(dir.path(), "absent"), Err(true));
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        push_decimal(&mut v, 1234);
        assert_eq!(v, b"01234");
    }
}
