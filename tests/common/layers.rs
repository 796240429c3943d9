//! Layer tar fixtures: well-formed and hostile entries built in memory.
//!
//! Paths and link names are written into the header bytes directly (or as a PAX record when
//! longer than the ustar fields), so entries like `../x`, `/etc/x` or `a/../../b` reach the
//! unpacker exactly as an attacker would write them; the `tar` crate's own path setters refuse
//! them.
#![allow(dead_code)]

use berth::image::unpack::{unpack_layer, UnpackError, UnpackOutcome};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// One entry, with builder-style setters.
#[derive(Clone, Debug)]
pub struct E {
    pub kind: EntryType,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub pax: Vec<(String, Vec<u8>)>,
    /// Size to declare instead of `data.len()`.
    pub declared_size: Option<u64>,
}

impl E {
    fn new(kind: EntryType, path: &str) -> E {
        E {
            kind,
            path: path.as_bytes().to_vec(),
            link: Vec::new(),
            data: Vec::new(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            dev: (0, 0),
            pax: Vec::new(),
            declared_size: None,
        }
    }
    pub fn file(path: &str, data: &[u8]) -> E {
        E {
            data: data.to_vec(),
            ..E::new(EntryType::Regular, path)
        }
    }
    pub fn dir(path: &str) -> E {
        E {
            mode: 0o755,
            ..E::new(EntryType::Directory, path)
        }
    }
    pub fn symlink(path: &str, target: &str) -> E {
        E {
            link: target.as_bytes().to_vec(),
            mode: 0o777,
            ..E::new(EntryType::Symlink, path)
        }
    }
    pub fn hardlink(path: &str, target: &str) -> E {
        E {
            link: target.as_bytes().to_vec(),
            ..E::new(EntryType::Link, path)
        }
    }
    pub fn char_dev(path: &str, major: u32, minor: u32) -> E {
        E {
            dev: (major, minor),
            mode: 0o666,
            ..E::new(EntryType::Char, path)
        }
    }
    pub fn block_dev(path: &str, major: u32, minor: u32) -> E {
        E {
            dev: (major, minor),
            mode: 0o660,
            ..E::new(EntryType::Block, path)
        }
    }
    pub fn fifo(path: &str) -> E {
        E::new(EntryType::Fifo, path)
    }
    pub fn mode(mut self, mode: u32) -> E {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> E {
        self.mtime = mtime;
        self
    }
    pub fn xattr(mut self, name: &str, value: &[u8]) -> E {
        self.pax
            .push((format!("SCHILY.xattr.{name}"), value.to_vec()));
        self
    }
    pub fn pax(mut self, key: &str, value: &[u8]) -> E {
        self.pax.push((key.to_string(), value.to_vec()));
        self
    }
    pub fn declare_size(mut self, size: u64) -> E {
        self.declared_size = Some(size);
        self
    }
}

/// PAX records `"<len> <key>=<value>\n"`.
pub fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + body.to_string().len();
        if len.to_string().len() != body.to_string().len() {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// Builds a layer tar in memory.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn with(entries: impl IntoIterator<Item = E>) -> Layer {
        let mut l = Layer::new();
        for e in entries {
            l.add(e);
        }
        l
    }

    pub fn add(&mut self, e: E) -> &mut Layer {
        let mut pax = e.pax.clone();
        if e.path.len() > 100 {
            pax.push(("path".into(), e.path.clone()));
        }
        if e.link.len() > 100 {
            pax.push(("linkpath".into(), e.link.clone()));
        }
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let mut h = Header::new_ustar();
            h.as_mut_bytes()[..13].copy_from_slice(b"PaxHeaders/x\0");
            h.set_entry_type(EntryType::XHeader);
            h.set_size(records.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.b
                .append(&h, records.as_slice())
                .expect("append pax header");
        }
        let mut h = Header::new_ustar();
        {
            let bytes = h.as_mut_bytes();
            let n = e.path.len().min(100);
            bytes[..n].copy_from_slice(&e.path[..n]);
            let n = e.link.len().min(100);
            bytes[157..157 + n].copy_from_slice(&e.link[..n]);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.declared_size.unwrap_or(e.data.len() as u64));
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).expect("device major");
            h.set_device_minor(e.dev.1).expect("device minor");
        }
        h.set_cksum();
        self.raw(&h, &e.data);
        self
    }

    /// Appends a header as is, and `data` padded to a block.
    pub fn raw(&mut self, h: &Header, data: &[u8]) -> &mut Layer {
        let w = self.b.get_mut();
        w.extend_from_slice(h.as_bytes());
        w.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        w.resize(w.len() + pad, 0);
        self
    }

    /// The tar with its end-of-archive marker.
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish tar")
    }

    /// The tar as written so far, without the end-of-archive marker.
    pub fn unterminated(mut self) -> Vec<u8> {
        std::mem::take(self.b.get_mut())
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("zstd")
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A temp dir holding `dest` (the layer directory) and `sentinel` (a sibling with one file that
/// no archive may touch); removed on drop.
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub sentinel: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("berth-unpack-test-")
            .tempdir()
            .expect("tempdir");
        let dest = tmp.path().join("dest");
        let sentinel = tmp.path().join("sentinel");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("secret"), b"keep out").unwrap();
        Fixture {
            _tmp: tmp,
            dest,
            sentinel,
        }
    }

    pub fn unpack(&self, blob: &[u8]) -> Result<UnpackOutcome, UnpackError> {
        unpack_layer(blob, &self.dest)
    }

    pub fn d(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    /// The sentinel dir holds exactly its one untouched file, and the temp dir nothing but
    /// `dest` and `sentinel`.
    pub fn assert_sentinel_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.sentinel)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("secret")],
            "sentinel dir changed"
        );
        let secret = self.sentinel.join("secret");
        let md = fs::symlink_metadata(&secret).unwrap();
        assert_eq!(md.nlink(), 1, "sentinel file got hard-linked");
        assert_eq!(fs::read(&secret).unwrap(), b"keep out");
        let mut siblings: Vec<_> = fs::read_dir(self.dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        siblings.sort();
        assert_eq!(
            siblings,
            vec!["dest", "sentinel"],
            "something was created next to dest"
        );
    }
}

/// An xattr of `path` itself (not following a symlink), if set.
pub fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and live across the call; buf is writable for its length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// Whether `path` is an overlayfs whiteout (character device 0:0).
pub fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}
