//! Layer unpacking (placeholder signature; being written).

use super::digest::Digest;
use std::io::Read;
use std::path::Path;

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
    #[error("layer unpacking is not implemented yet")]
    Unimplemented,
}

/// Unpacks a layer stream (tar, tar+gzip or tar+zstd, detected from its first bytes) into the
/// existing empty directory `dest`, converting whiteouts to overlayfs form. Reads the input to its
/// end so that both digests cover every byte.
pub fn unpack_layer<R: Read>(_input: R, _dest: &Path) -> Result<UnpackOutcome, UnpackError> {
    Err(UnpackError::Unimplemented)
}
