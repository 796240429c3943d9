//! A streaming reader for the tar dialects that image layers use: ustar, GNU (long names and
//! link names) and PAX (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`, `atime`,
//! `SCHILY.xattr.*`).
//!
//! Why not the `tar` crate: layers are hostile, and the crate
//! - reads a PAX or GNU long-name record of any declared size into memory (a few kilobytes of
//!   gzip can declare gigabytes: a memory bomb); here such records are capped at [`MAX_META`];
//! - ends the archive silently when the stream stops at a block boundary, and hands out short
//!   data when it stops inside an entry; here both are errors, so a truncated plain tar never
//!   becomes a silently half-unpacked layer;
//! - honours the size field of header-only types (links, directories, devices), where Go's
//!   `archive/tar`, which builds and applies almost every layer in the field (docker,
//!   containerd, buildkit), ignores it. Two parsers disagreeing about where the next header
//!   starts is how "the same" archive shows different files to different tools, so we read it
//!   exactly as Go does.
//!
//! Buffers are reused from entry to entry: reading a header allocates nothing once warm.

use super::UnpackError;
use std::io::{self, BufRead, Read};
use std::ops::Range;

mod fields;
use fields::{check_checksum, cstr, parse_i64, parse_pax, parse_u64, trim_nul, Pax};

pub(super) const BLOCK: usize = 512;
/// Largest PAX extended header or GNU long name/link record accepted.
pub(super) const MAX_META: u64 = 1 << 20;

/// The entry types a layer may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// Seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// One entry's metadata, after GNU and PAX extension records are applied.
#[derive(Debug)]
pub(super) struct Header {
    pub kind: Kind,
    /// The path as the archive spells it (not normalized).
    pub path: Vec<u8>,
    /// Link target (symlinks and hard links), as the archive spells it.
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of data that follow (0 for every type but regular files).
    pub size: u64,
    pub mtime: Time,
    pub atime: Option<Time>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pax: Vec<u8>,
    xattrs: Vec<(Range<usize>, Range<usize>)>,
}

impl Header {
    fn new() -> Self {
        Header {
            kind: Kind::Regular,
            path: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: Time::default(),
            atime: None,
            dev_major: 0,
            dev_minor: 0,
            pax: Vec::new(),
            xattrs: Vec::new(),
        }
    }

    /// Extended attributes from `SCHILY.xattr.NAME=VALUE` PAX records, in archive order.
    pub fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.xattrs
            .iter()
            .map(|(n, v)| (&self.pax[n.clone()], &self.pax[v.clone()]))
    }

    pub fn has_xattrs(&self) -> bool {
        !self.xattrs.is_empty()
    }
}

/// The byte stream with the current entry's position in it.
pub(super) struct Source<R> {
    inner: R,
    /// Bytes consumed from the tar stream so far.
    offset: u64,
    /// Data bytes of the current entry not read yet, and the padding after them.
    remaining: u64,
    pad: u64,
}

impl<R: BufRead> Source<R> {
    /// Offset in the tar stream, for error messages.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next bytes of the current entry's data, straight from the stream's buffer (no copy);
    /// empty only once all of it has been consumed. A stream that ends before the entry's
    /// declared size is an `UnexpectedEof` error. Call [`Source::consume_data`] afterwards.
    pub fn data(&mut self) -> io::Result<&[u8]> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        if fill_len(&mut self.inner)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "stream ends {} bytes before the end of the entry's data",
                    self.remaining
                ),
            ));
        }
        let buf = self.inner.fill_buf()?;
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        Ok(&buf[..n])
    }

    /// Marks `n` bytes returned by [`Source::data`] as used.
    pub fn consume_data(&mut self, n: usize) {
        self.inner.consume(n);
        self.remaining -= n as u64;
        self.offset += n as u64;
    }

    /// Skips the unread data and the padding of the current entry.
    fn skip_rest(&mut self) -> io::Result<()> {
        let mut left = self.remaining.saturating_add(self.pad);
        while left > 0 {
            let avail = fill_len(&mut self.inner)?;
            if avail == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ends {left} bytes before the next header"),
                ));
            }
            let n = avail.min(usize::try_from(left).unwrap_or(usize::MAX));
            self.inner.consume(n);
            self.offset += n as u64;
            left -= n as u64;
        }
        self.remaining = 0;
        self.pad = 0;
        Ok(())
    }

    /// Reads one block; `Ok(false)` on a clean end of stream before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let n = read_retry(&mut self.inner, &mut block[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ends inside a header block",
                ));
            }
            got += n;
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Reads the whole data of an extension record into `out` (replacing its contents).
    fn read_record(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        loop {
            let chunk = self.data()?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            out.extend_from_slice(chunk);
            self.consume_data(n);
        }
        self.skip_rest()
    }

    fn start_data(&mut self, size: u64) {
        self.remaining = size;
        self.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    }
}

/// Length of what `fill_buf` has buffered (0 at the end of the stream), retrying interrupts.
fn fill_len<R: BufRead>(r: &mut R) -> io::Result<usize> {
    loop {
        match r.fill_buf() {
            Ok(b) => return Ok(b.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_retry<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads entries one after the other.
pub(super) struct TarReader<R> {
    src: Source<R>,
    hdr: Header,
    block: Box<[u8; BLOCK]>,
    long_name: Vec<u8>,
    long_link: Vec<u8>,
    scratch: Vec<u8>,
    finished: bool,
}

impl<R: BufRead> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            src: Source {
                inner,
                offset: 0,
                remaining: 0,
                pad: 0,
            },
            hdr: Header::new(),
            block: Box::new([0; BLOCK]),
            long_name: Vec::new(),
            long_link: Vec::new(),
            scratch: Vec::new(),
            finished: false,
        }
    }

    /// The next entry, or `None` at the end-of-archive marker. The data of the previous entry is
    /// skipped if it was not read. A stream that ends without the marker is an error.
    pub fn next_entry(&mut self) -> Result<Option<(&Header, &mut Source<R>)>, UnpackError> {
        if self.finished {
            return Ok(None);
        }
        let offset = self.src.offset;
        self.src.skip_rest().map_err(|e| read_error(offset, e))?;
        let mut pax = Pax::default();
        let (mut have_pax, mut have_name, mut have_link) = (false, false, false);
        self.hdr.xattrs.clear();
        loop {
            let mut global = false;
            let start = self.src.offset;
            let got = self
                .src
                .read_block(&mut self.block)
                .map_err(|e| read_error(start, e))?;
            if !got {
                return Err(UnpackError::Truncated {
                    offset: start,
                    what: "the stream ends without the end-of-archive marker".into(),
                });
            }
            let b = &*self.block;
            if b.iter().all(|&x| x == 0) {
                if have_pax || have_name || have_link {
                    return Err(malformed(
                        start,
                        "extension header is not followed by an entry",
                    ));
                }
                self.finished = true;
                return Ok(None);
            }
            check_checksum(b).map_err(|w| malformed(start, w))?;
            let typ = b[156];
            let size = parse_u64(&b[124..136])
                .map_err(|w| malformed(start, format!("size field: {w}")))?;
            if matches!(typ, b'L' | b'K' | b'x' | b'g') {
                if size > MAX_META {
                    return Err(malformed(
                        start,
                        format!("extension header of {size} bytes exceeds the limit of {MAX_META} bytes"),
                    ));
                }
                self.src.start_data(size);
                let (seen, buf) = match typ {
                    b'L' => (&mut have_name, &mut self.long_name),
                    b'K' => (&mut have_link, &mut self.long_link),
                    b'x' => (&mut have_pax, &mut self.hdr.pax),
                    // A global PAX header applies to the whole archive; Go's reader (and so
                    // docker and containerd) does not apply it to entries either. Skip it.
                    _ => (&mut global, &mut self.scratch),
                };
                if *seen {
                    return Err(malformed(
                        start,
                        "two extension headers of the same type for one entry",
                    ));
                }
                *seen = true;
                self.src
                    .read_record(buf)
                    .map_err(|e| read_error(start, e))?;
                if typ == b'x' {
                    pax = parse_pax(&self.hdr.pax, &mut self.hdr.xattrs)
                        .map_err(|w| malformed(start, w))?;
                } else if typ != b'g' {
                    trim_nul(buf);
                }
                continue;
            }
            self.build_header(start, size, &pax, have_name, have_link)?;
            return Ok(Some((&self.hdr, &mut self.src)));
        }
    }

    fn build_header(
        &mut self,
        start: u64,
        size: u64,
        pax: &Pax,
        long_name: bool,
        long_link: bool,
    ) -> Result<(), UnpackError> {
        let b = &*self.block;
        let h = &mut self.hdr;
        let field = |r: Range<usize>, what: &str| -> Result<u64, UnpackError> {
            parse_u64(&b[r]).map_err(|w| malformed(start, format!("{what} field: {w}")))
        };

        h.path.clear();
        if let Some(r) = &pax.path {
            h.path.extend_from_slice(&h.pax[r.clone()]);
        } else if long_name {
            h.path.extend_from_slice(&self.long_name);
        } else {
            let posix = &b[257..263] == b"ustar\0";
            if posix {
                // star puts atime/ctime after a 131-byte prefix and marks it with "tar\0".
                let prefix = if &b[508..512] == b"tar\0" {
                    &b[345..476]
                } else {
                    &b[345..500]
                };
                let prefix = cstr(prefix);
                if !prefix.is_empty() {
                    h.path.extend_from_slice(prefix);
                    h.path.push(b'/');
                }
            }
            h.path.extend_from_slice(cstr(&b[0..100]));
        }
        h.link.clear();
        if let Some(r) = &pax.link {
            h.link.extend_from_slice(&h.pax[r.clone()]);
        } else if long_link {
            h.link.extend_from_slice(&self.long_link);
        } else {
            h.link.extend_from_slice(cstr(&b[157..257]));
        }

        let typ = b[156];
        let (kind, has_data) = match typ {
            b'0' | b'\0' | b'7' if h.path.last() == Some(&b'/') => (Kind::Dir, false),
            b'0' | b'\0' | b'7' => (Kind::Regular, true),
            b'1' => (Kind::HardLink, false),
            b'2' => (Kind::Symlink, false),
            b'3' => (Kind::Char, false),
            b'4' => (Kind::Block, false),
            b'5' => (Kind::Dir, false),
            b'6' => (Kind::Fifo, false),
            // GNU dump directory: a directory whose data lists its contents. Skip the list.
            b'D' => (Kind::Dir, true),
            b'S' => return Err(entry_error(&h.path, "GNU sparse files are not supported")),
            other => {
                return Err(entry_error(
                    &h.path,
                    format!("unsupported entry type {:?}", other as char),
                ));
            }
        };
        h.kind = kind;
        let size = pax.size.unwrap_or(size);
        h.size = if kind == Kind::Regular { size } else { 0 };
        self.src.start_data(if has_data { size } else { 0 });

        h.mode = (field(100..108, "mode")? & 0o7777) as u32;
        h.uid = match pax.uid {
            Some(v) => v,
            None => field(108..116, "uid")?,
        };
        h.gid = match pax.gid {
            Some(v) => v,
            None => field(116..124, "gid")?,
        };
        h.mtime = match pax.mtime {
            Some(t) => t,
            None => Time {
                sec: parse_i64(&b[136..148])
                    .map_err(|w| malformed(start, format!("mtime field: {w}")))?,
                nsec: 0,
            },
        };
        h.atime = pax.atime;
        h.dev_major = 0;
        h.dev_minor = 0;
        if matches!(kind, Kind::Char | Kind::Block) {
            let major = field(329..337, "device major")?;
            let minor = field(337..345, "device minor")?;
            h.dev_major = u32::try_from(major)
                .map_err(|_| entry_error(&h.path, "device major number out of range"))?;
            h.dev_minor = u32::try_from(minor)
                .map_err(|_| entry_error(&h.path, "device minor number out of range"))?;
        }
        Ok(())
    }
}

/// A read error of the layer stream; an early end is reported as truncation.
pub(super) fn read_error(offset: u64, e: io::Error) -> UnpackError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        UnpackError::Truncated {
            offset,
            what: e.to_string(),
        }
    } else {
        UnpackError::Read { offset, source: e }
    }
}

fn malformed(offset: u64, what: impl Into<String>) -> UnpackError {
    UnpackError::Malformed {
        offset,
        what: what.into(),
    }
}

fn entry_error(path: &[u8], what: impl Into<String>) -> UnpackError {
    UnpackError::Entry {
        path: String::from_utf8_lossy(path).into_owned(),
        what: what.into(),
    }
}
