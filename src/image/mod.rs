//! Images: references, the content-addressed store, and the ways images get into it.
//!
//! - [`digest`]: `sha256:<hex>` digests and a hashing reader/writer.
//! - [`reference`]: docker-style image references (`ubuntu:14.04` → `docker.io/library/ubuntu:14.04`).
//! - [`store`]: blobs, unpacked layers (each stored once, keyed by its diff id), image records, tags.
//! - [`unpack`]: hostile-input-safe layer unpacking with overlayfs whiteouts.
//! - [`load`]: `image load` of OCI layouts and `docker save` tarballs; [`import`]: rootfs tarballs.
//! - [`registry`]: `pull` over the OCI distribution protocol, and `login`.

pub mod digest;
pub mod import;
pub mod load;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
