//! Layer unpacking: a hostile layer blob in, a directory overlayfs can use as a lower layer out.
//!
//! The raw blob is hashed (blob digest), its compression is told from its first bytes (gzip,
//! zstd, or none), the tar stream is hashed (diff id) and applied entry by entry; both streams
//! are read to their very end so that the digests cover every byte. The caller compares the
//! digests with what it expected and deletes the directory on a mismatch.
//!
//! Safety against hostile archives (see `safe_path.rs` and `entries.rs`):
//! - Paths are normalized lexically first: a leading `/` is dropped (docker does the same) and
//!   `..` is **clamped at the layer root**, the semantics of `RESOLVE_IN_ROOT` and containerd:
//!   `../../etc/x` and `/etc/x` both land in `DEST/etc/x`, never outside.
//! - Each entry's parent directory is resolved by the kernel with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from an fd of `DEST`, so symlinks the layer
//!   planted are followed as if `DEST` were `/` (`a -> /etc` then `a/passwd` writes
//!   `DEST/etc/passwd` when `DEST/etc` exists, and fails otherwise; `a -> ../../..` then `a/x`
//!   writes `DEST/x`).
//! - The last component is created relative to the parent fd without following it, hard link
//!   targets are resolved in the root too, and a file larger than the free space of `DEST`'s
//!   filesystem is refused before anything is written.
//! - Metadata records are capped (1 MiB), a stream that ends early (inside an entry, or without
//!   the end-of-archive marker) is an error, and overlayfs' own xattrs are never taken from the
//!   archive. Entries are never written through: an existing name is unlinked and created anew,
//!   so a file hard-linked earlier is not changed behind its other names.
//! - Later entries replace earlier ones of the same path; a directory over a directory merges.
//!
//! Whiteouts are converted to overlayfs form (`whiteout.rs`): `.wh.NAME` becomes a character
//! device 0:0, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
//!
//! Speed: decompression and the blob hash run on the calling thread, the tar hash and the
//! filesystem work on a helper thread (`pipe.rs`); the parent directory fd is cached between
//! entries; file data is written straight from the stream buffers; buffers are reused, so the
//! common entry allocates nothing.
//!
//! Not supported: GNU sparse entries and tar multi-volume types (errors), `LIBARCHIVE.xattr.*`
//! records (ignored), unprivileged (rootless) unpacking (ownership needs `CAP_CHOWN`).

mod entries;
mod pipe;
mod safe_path;
mod tar;
mod whiteout;

use super::digest::{Digest, HashingReader};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// What unpacking one layer produced.
#[derive(Debug, Clone)]
pub struct UnpackOutcome {
    /// Digest and size of the raw input (the blob as stored or downloaded, possibly compressed).
    pub blob_digest: Digest,
    pub blob_size: u64,
    /// Digest of the uncompressed tar stream (the layer's diff id).
    pub diff_id: Digest,
    /// Bytes of file content written.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open layer directory {}: {source}", dest.display())]
    Dest { dest: PathBuf, source: io::Error },
    #[error(
        "this kernel has no openat2 (linux 5.6 or later is needed to unpack layers safely): {0}"
    )]
    NoOpenat2(io::Error),
    #[error("cannot start the layer unpacking thread: {0}")]
    Thread(io::Error),
    #[error("cannot read the layer stream at offset {offset}: {source} (is the blob corrupt? fetch it again)")]
    Read { offset: u64, source: io::Error },
    #[error("layer stream is truncated at offset {offset}: {what}; fetch the blob again")]
    Truncated { offset: u64, what: String },
    #[error("layer is compressed with {0}, which OCI layers do not use; recompress it with gzip or zstd")]
    UnsupportedCompression(&'static str),
    #[error("layer tar is malformed at offset {offset}: {what}")]
    Malformed { offset: u64, what: String },
    #[error("layer entry {path:?}: {what}")]
    Entry { path: String, what: String },
    #[error("layer entry {path:?} holds {size} bytes but the layer's filesystem has only {free} bytes free; free some space and retry")]
    NoSpace { path: String, size: u64, free: u64 },
    #[error("layer entry {path:?}: cannot {op}: {source}")]
    Fs {
        path: String,
        op: String,
        source: io::Error,
    },
}

/// Buffer between the raw blob and the decompressor.
const RAW_BUF: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Tells the compression from the first bytes of the blob.
fn detect(magic: &[u8]) -> Result<Compression, UnpackError> {
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(UnpackError::UnsupportedCompression("xz"));
    } else if magic.len() == 6
        && magic.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&magic[3])
        && magic[4..] == [0x31, 0x41]
    {
        return Err(UnpackError::UnsupportedCompression("bzip2"));
    } else {
        Compression::None
    })
}

/// Unpacks a layer stream (tar, tar+gzip or tar+zstd, detected from its first bytes) into the
/// existing empty directory `dest`, converting whiteouts to overlayfs form. Reads the input to its
/// end so that both digests cover every byte.
pub fn unpack_layer<R: Read>(input: R, dest: &Path) -> Result<UnpackOutcome, UnpackError> {
    let mut unpacker = entries::Unpacker::new(dest)?;
    let mut raw = HashingReader::new(input);
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut raw, &mut magic)
        .map_err(|source| UnpackError::Read { offset: 0, source })?;
    let head = &magic[..n];
    let compression = detect(head)?;
    let diff_id = match compression {
        Compression::None => {
            // The tar stream is the blob: one hash serves both digests.
            pipe::run(head.chain(&mut raw), false, |r| {
                unpacker.run(tar::TarReader::new(r))
            })?;
            None
        }
        Compression::Gzip => {
            // Multi-member: eStargz and pigz-style layers are many gzip members back to back.
            let dec = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(
                RAW_BUF,
                head.chain(&mut raw),
            ));
            Some(unpack_decompressed(&mut unpacker, dec)?)
        }
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
                RAW_BUF,
                head.chain(&mut raw),
            ))
            .map_err(|source| UnpackError::Read { offset: 0, source })?;
            Some(unpack_decompressed(&mut unpacker, dec)?)
        }
    };
    // Whatever follows the compressed stream (or the tar's end marker) is part of the blob.
    let end = raw.count();
    raw.drain().map_err(|e| tar::read_error(end, e))?;
    let (blob_digest, blob_size, _) = raw.finish();
    let size = unpacker.finish()?;
    let diff_id = diff_id.unwrap_or_else(|| blob_digest.clone());
    Ok(UnpackOutcome {
        blob_digest,
        blob_size,
        diff_id,
        size,
    })
}

/// Applies the tar inside `dec` and returns its digest (the diff id). The pipeline reads `dec`
/// to its end, so the digest covers the end-of-archive padding too.
fn unpack_decompressed<D: Read>(
    unpacker: &mut entries::Unpacker,
    dec: D,
) -> Result<Digest, UnpackError> {
    let ((), digest) = pipe::run(dec, true, |r| unpacker.run(tar::TarReader::new(r)))?;
    digest.ok_or_else(|| UnpackError::Read {
        offset: 0,
        source: io::Error::other("the tar stream was not hashed"),
    })
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(super) fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression_from_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(detect(b"etc/\0\0").unwrap(), Compression::None);
        assert_eq!(detect(b"").unwrap(), Compression::None);
        assert!(matches!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Err(UnpackError::UnsupportedCompression("xz"))
        ));
    }

    #[test]
    fn read_up_to_stops_at_end() {
        let mut buf = [0u8; 6];
        assert_eq!(read_up_to(&mut &b"abc"[..], &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }
}
