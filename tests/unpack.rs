//! Layer unpacking on the real kernel, as root: hostile archives never write outside the layer
//! directory; metadata, devices, links and whiteouts come out as overlayfs expects.
//!
//! Each test gets its own temp dir holding `dest` (the layer directory) and `sentinel` (a sibling
//! with one file in it) that no archive may touch.

#[path = "common/layers.rs"]
mod layers;

use berth::image::unpack::UnpackError;
use layers::{gzip, is_whiteout, lgetxattr, sha256, zstd, Fixture, Layer, E};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use tar::{EntryType, Header};

// ---------------------------------------------------------------------------------------------
// Streams and digests

fn sample_layer() -> Vec<u8> {
    Layer::with([
        E::dir("./"),
        E::dir("./bin/"),
        E::file("./bin/sh", &vec![7u8; 100_000]).mode(0o755),
        E::dir("./etc/"),
        E::file("./etc/hostname", b"berth\n"),
        E::symlink("./etc/localtime", "/usr/share/zoneinfo/UTC"),
    ])
    .finish()
}

#[test]
fn plain_gzip_and_zstd_give_the_same_diff_id_and_their_own_blob_digest() {
    let tar = sample_layer();
    let diff_id = sha256(&tar);
    for blob in [tar.clone(), gzip(&tar), zstd(&tar)] {
        let fx = Fixture::new();
        let out = fx.unpack(&blob).unwrap();
        assert_eq!(out.diff_id.to_string(), diff_id);
        assert_eq!(out.blob_digest.to_string(), sha256(&blob));
        assert_eq!(out.blob_size, blob.len() as u64);
        assert_eq!(out.size, 100_000 + 6);
        assert_eq!(fs::read(fx.d("etc/hostname")).unwrap(), b"berth\n");
        assert_eq!(
            fs::read_link(fx.d("etc/localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/UTC")
        );
    }
}

#[test]
fn digests_cover_trailing_padding_and_bytes_after_the_compressed_stream() {
    let mut tar = sample_layer();
    tar.extend_from_slice(&[0u8; 10240]); // tar's record padding after the end marker
    let fx = Fixture::new();
    assert_eq!(fx.unpack(&tar).unwrap().diff_id.to_string(), sha256(&tar));

    let mut blob = zstd(&tar);
    blob.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]); // skippable frame
    let fx = Fixture::new();
    let out = fx.unpack(&blob).unwrap();
    assert_eq!(out.diff_id.to_string(), sha256(&tar));
    assert_eq!(out.blob_digest.to_string(), sha256(&blob));
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let tar = sample_layer();
    let (a, b) = tar.split_at(1536);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    let fx = Fixture::new();
    let out = fx.unpack(&blob).unwrap();
    assert_eq!(out.diff_id.to_string(), sha256(&tar));
    assert_eq!(out.blob_digest.to_string(), sha256(&blob));
}

#[test]
fn truncated_streams_are_errors() {
    let tar = sample_layer();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip cut in half", gz[..gz.len() / 2].to_vec()),
        ("gzip without its trailer", gz[..gz.len() - 4].to_vec()),
        ("zstd cut in half", zs[..zs.len() / 2].to_vec()),
        ("plain tar cut inside file data", tar[..2048].to_vec()),
        ("plain tar cut inside a header", tar[..1300].to_vec()),
        (
            "plain tar cut at a block boundary",
            Layer::with([E::file("a", b"x")]).unterminated(),
        ),
        ("empty stream", Vec::new()),
    ];
    for (what, blob) in cases {
        let fx = Fixture::new();
        match fx.unpack(&blob) {
            Err(e @ (UnpackError::Truncated { .. } | UnpackError::Read { .. })) => {
                eprintln!("{what}: {e}")
            }
            other => panic!("{what}: expected a truncation error, got {other:?}"),
        }
    }
}

#[test]
fn garbage_is_an_error() {
    let fx = Fixture::new();
    let err = fx.unpack(&[b'x'; 4096]).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Hostile paths

#[test]
fn dotdot_paths_are_clamped_inside_the_layer() {
    let fx = Fixture::new();
    fx.unpack(
        &Layer::with([
            E::file("../sentinel/pwned", b"x"),
            E::file("a/../../../top", b"y"),
        ])
        .finish(),
    )
    .unwrap();
    fx.assert_sentinel_untouched();
    assert_eq!(fs::read(fx.d("sentinel/pwned")).unwrap(), b"x");
    assert_eq!(fs::read(fx.d("top")).unwrap(), b"y");
}

#[test]
fn absolute_paths_are_relative_to_the_layer_root() {
    let fx = Fixture::new();
    let abs = fx.sentinel.join("pwned");
    fx.unpack(
        &Layer::with([
            E::file("/etc/berth-test", b"x"),
            E::file(abs.to_str().unwrap(), b"y"),
        ])
        .finish(),
    )
    .unwrap();
    fx.assert_sentinel_untouched();
    assert!(!Path::new("/etc/berth-test").exists());
    assert_eq!(fs::read(fx.d("etc/berth-test")).unwrap(), b"x");
    assert_eq!(
        fs::read(fx.dest.join(abs.strip_prefix("/").unwrap())).unwrap(),
        b"y"
    );
}

#[test]
fn writes_through_an_absolute_symlink_stay_inside() {
    let abs = |fx: &Fixture| fx.sentinel.to_str().unwrap().to_string();
    // Target missing inside the layer: an error, nothing written anywhere.
    let fx = Fixture::new();
    let r =
        fx.unpack(&Layer::with([E::symlink("a", &abs(&fx)), E::file("a/pwned", b"x")]).finish());
    assert!(r.is_err());
    fx.assert_sentinel_untouched();

    // Target present inside the layer: the write lands there (clamped), not on the host.
    let fx = Fixture::new();
    let inside = fx.dest.join(fx.sentinel.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    fx.unpack(&Layer::with([E::symlink("a", &abs(&fx)), E::file("a/pwned", b"x")]).finish())
        .unwrap();
    fx.assert_sentinel_untouched();
    assert_eq!(fs::read(inside.join("pwned")).unwrap(), b"x");

    // The classic: etc -> /etc, then etc/passwd.
    let fx = Fixture::new();
    let before = fs::symlink_metadata("/etc/passwd").unwrap();
    let r = fx.unpack(
        &Layer::with([
            E::symlink("etc", "/etc"),
            E::file("etc/passwd", b"root::0:0::/:/bin/sh\n"),
        ])
        .finish(),
    );
    assert!(r.is_err());
    let after = fs::symlink_metadata("/etc/passwd").unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.size()),
        (after.ino(), after.mtime(), after.size())
    );
}

#[test]
fn writes_through_relative_escaping_symlinks_stay_inside() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::symlink("up", "../../../../../../.."),
        E::file("up/x", b"x"),
        E::symlink("sib", "../sentinel"),
        E::dir("sentinel/"),
        E::file("sib/pwned", b"y"),
        E::dir("d/"),
        E::symlink("d/chain", "../up/../../sib"),
        E::file("d/chain/z", b"z"),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    fx.assert_sentinel_untouched();
    assert_eq!(fs::read(fx.d("x")).unwrap(), b"x");
    assert_eq!(fs::read(fx.d("sentinel/pwned")).unwrap(), b"y");
    assert_eq!(fs::read(fx.d("sentinel/z")).unwrap(), b"z");
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let secret = |fx: &Fixture| fx.sentinel.join("secret").to_str().unwrap().to_string();
    let fx = Fixture::new();
    let cases = [
        vec![E::hardlink("h", "../sentinel/secret")],
        vec![E::hardlink("h", &secret(&fx))],
        vec![
            E::symlink("s", fx.sentinel.to_str().unwrap()),
            E::hardlink("h", "s/secret"),
        ],
        vec![E::symlink("s", "../sentinel"), E::hardlink("h", "s/secret")],
        vec![E::hardlink("h", "/etc/passwd")],
    ];
    for entries in cases {
        let fx = Fixture::new();
        let passwd = fs::symlink_metadata("/etc/passwd").unwrap().nlink();
        let r = fx.unpack(&Layer::with(entries.clone()).finish());
        eprintln!("{r:?}");
        assert!(r.is_err(), "{entries:?} accepted");
        fx.assert_sentinel_untouched();
        assert_eq!(fs::symlink_metadata("/etc/passwd").unwrap().nlink(), passwd);
        assert!(!fx.d("h").exists());
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_written_through_the_stale_cache() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("other/"),
        E::dir("d/"),
        E::file("d/one", b"1"),
        E::symlink("d", "other"),
        E::file("d/two", b"2"),
        E::symlink("d", fx.sentinel.to_str().unwrap()),
        E::file("d/three", b"3"),
    ]);
    let r = fx.unpack(&layer.finish());
    fx.assert_sentinel_untouched();
    assert!(
        r.is_err(),
        "d/three through a symlink to a missing dir must fail"
    );
    assert_eq!(fs::read(fx.d("other/two")).unwrap(), b"2");
    assert!(!fx.d("other/one").exists());
}

#[test]
fn absurd_sizes_are_refused_before_writing() {
    let fx = Fixture::new();
    let r = fx.unpack(&Layer::with([E::file("big", b"").declare_size(1 << 60)]).finish());
    match r {
        Err(UnpackError::NoSpace { size, .. }) => assert_eq!(size, 1 << 60),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!fx.d("big").exists());

    // Data that is skipped rather than written (a whiteout's) may claim any size too.
    for size in [u64::MAX, u64::MAX - 511] {
        let fx = Fixture::new();
        let layer = Layer::with([
            E::file("d/.wh.x", b"").declare_size(size),
            E::file("y", b""),
        ]);
        match fx.unpack(&layer.finish()) {
            Err(UnpackError::Truncated { .. }) => {}
            other => panic!("expected a truncation error, got {other:?}"),
        }
    }
}

#[test]
fn oversized_metadata_records_are_refused() {
    let fx = Fixture::new();
    let mut h = Header::new_ustar();
    h.as_mut_bytes()[..5].copy_from_slice(b"pax\0\0");
    h.set_entry_type(EntryType::XHeader);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut l = Layer::new();
    l.raw(&h, &[]);
    let err = fx.unpack(&gzip(&l.finish())).unwrap_err();
    assert!(matches!(err, UnpackError::Malformed { .. }), "{err}");
}

#[test]
fn nul_bytes_and_bad_whiteouts_are_errors() {
    for e in [
        E::file("a", b"").pax("path", b"a\0b"),
        E::file("d/.wh.", b""),
        E::file("d/.wh..", b""),
    ] {
        let fx = Fixture::new();
        assert!(
            fx.unpack(&Layer::with([e.clone()]).finish()).is_err(),
            "{e:?}"
        );
    }
    let fx = Fixture::new();
    assert!(
        fx.unpack(&Layer::with([E::file("./", b"x")]).finish())
            .is_err(),
        "file as the root"
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata

#[test]
fn ownership_and_special_mode_bits_are_preserved() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("tmp/").mode(0o1777).owner(0, 0),
        E::dir("srv/").mode(0o2750).owner(33, 33),
        E::file("usr/bin/su", b"#!").mode(0o4755).owner(0, 0),
        E::file("usr/bin/wall", b"#!").mode(0o2755).owner(0, 5),
        E::file("home/u/f", b"hi").mode(0o600).owner(1000, 1001),
        E::file("big-ids", b"").owner(100_000, 3_000_000_000),
        E::symlink("home/u/l", "f").owner(1000, 1001),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    let md = |p: &str| fs::symlink_metadata(fx.d(p)).unwrap();
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(
        (md("srv").mode() & 0o7777, md("srv").uid(), md("srv").gid()),
        (0o2750, 33, 33)
    );
    assert_eq!(md("usr/bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(
        (md("usr/bin/wall").mode() & 0o7777, md("usr/bin/wall").gid()),
        (0o2755, 5)
    );
    assert_eq!(
        (
            md("home/u/f").uid(),
            md("home/u/f").gid(),
            md("home/u/f").mode() & 0o7777
        ),
        (1000, 1001, 0o600)
    );
    assert_eq!(
        (md("big-ids").uid(), md("big-ids").gid()),
        (100_000, 3_000_000_000)
    );
    assert_eq!((md("home/u/l").uid(), md("home/u/l").gid()), (1000, 1001));
    // Parents the archive did not list are created 0755.
    assert_eq!(md("usr/bin").permissions().mode() & 0o7777, 0o755);
}

#[test]
fn xattrs_are_preserved_but_overlay_ones_refused() {
    // VFS_CAP_REVISION_2 with the effective bit, permitted = CAP_NET_BIND_SERVICE.
    let cap: Vec<u8> = [0x0200_0001u32, 1 << 10, 0, 0, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let fx = Fixture::new();
    let layer = Layer::with([
        E::file("ping", b"\x7fELF")
            .mode(0o755)
            .xattr("security.capability", &cap)
            .owner(0, 0),
        E::file("f", b"x")
            .xattr("user.berth.test", b"hello")
            .xattr("trusted.overlay.redirect", b"/etc"),
        E::dir("d/").xattr("user.berth.dir", b"1"),
        E::symlink("l", "f").xattr("trusted.berth.link", b"2"),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    assert_eq!(
        lgetxattr(&fx.d("ping"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        lgetxattr(&fx.d("f"), "user.berth.test").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(lgetxattr(&fx.d("f"), "trusted.overlay.redirect"), None);
    assert_eq!(
        lgetxattr(&fx.d("d"), "user.berth.dir").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        lgetxattr(&fx.d("l"), "trusted.berth.link").as_deref(),
        Some(&b"2"[..])
    );
}

#[test]
fn mtimes_are_preserved_for_files_symlinks_and_directories() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("./").mtime(1_000_000_001),
        E::dir("d/").mtime(1_000_000_002),
        E::dir("d/sub/").mtime(1_000_000_003),
        E::file("d/sub/f", b"x").mtime(1_000_000_004),
        E::symlink("d/l", "sub").mtime(1_000_000_005),
        E::file("d/frac", b"y").pax("mtime", b"1000000006.25"),
        E::file("d/late", b"z").mtime(1_000_000_007),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    let md = |p: &str| fs::symlink_metadata(fx.d(p)).unwrap();
    assert_eq!(
        fs::symlink_metadata(&fx.dest).unwrap().mtime(),
        1_000_000_001
    );
    assert_eq!(
        md("d").mtime(),
        1_000_000_002,
        "children must not bump a directory's mtime"
    );
    assert_eq!(md("d/sub").mtime(), 1_000_000_003);
    assert_eq!(md("d/sub/f").mtime(), 1_000_000_004);
    assert_eq!(md("d/l").mtime(), 1_000_000_005);
    assert_eq!(
        (md("d/frac").mtime(), md("d/frac").mtime_nsec()),
        (1_000_000_006, 250_000_000)
    );
    assert_eq!(md("d/late").mtime(), 1_000_000_007);
}

#[test]
fn device_nodes_fifos_and_hardlinks_are_preserved() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("dev/"),
        E::char_dev("dev/null", 1, 3).mode(0o666),
        E::block_dev("dev/loop0", 7, 0).mode(0o660).owner(0, 6),
        E::fifo("dev/fifo").mode(0o620),
        E::file("bin/busybox", b"binary").mode(0o755),
        E::hardlink("bin/ls", "bin/busybox"),
        E::hardlink("bin/cat", "./bin/busybox"),
        E::symlink("bin/sh-link", "busybox"),
        E::hardlink("bin/sh-hard", "bin/sh-link"),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    let md = |p: &str| fs::symlink_metadata(fx.d(p)).unwrap();
    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (
            nix::sys::stat::major(null.rdev()),
            nix::sys::stat::minor(null.rdev())
        ),
        (1, 3)
    );
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = md("dev/loop0");
    assert!(lp.file_type().is_block_device());
    assert_eq!(
        (
            nix::sys::stat::major(lp.rdev()),
            nix::sys::stat::minor(lp.rdev()),
            lp.gid()
        ),
        (7, 0, 6)
    );
    assert!(md("dev/fifo").file_type().is_fifo());
    assert_eq!(md("dev/fifo").mode() & 0o7777, 0o620);
    assert_eq!(md("bin/ls").ino(), md("bin/busybox").ino());
    assert_eq!(md("bin/cat").ino(), md("bin/busybox").ino());
    assert_eq!(md("bin/busybox").nlink(), 3);
    assert!(
        md("bin/sh-hard").file_type().is_symlink(),
        "a hard link to a symlink links the symlink"
    );
    assert_eq!(md("bin/sh-hard").ino(), md("bin/sh-link").ino());
}

// ---------------------------------------------------------------------------------------------
// Whiteouts and replacement

#[test]
fn whiteouts_become_overlay_character_devices() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("etc/"),
        E::file("etc/.wh.passwd", b""),
        E::file("etc/old", b"in this layer"),
        E::file("etc/.wh.old", b""),
        E::dir("gone/"),
        E::file("gone/x", b""),
        E::file(".wh.gone", b""),
        E::file("missing-parent/.wh.f", b""),
        E::dir(".wh..wh.plnk/"),
        E::file(".wh..wh.plnk/1234.5", b""),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    assert!(is_whiteout(&fx.d("etc/passwd")));
    assert!(is_whiteout(&fx.d("etc/old")));
    assert!(is_whiteout(&fx.d("gone")));
    assert!(is_whiteout(&fx.d("missing-parent/f")));
    assert!(!fx.d("etc/.wh.passwd").exists());
    assert!(!fx.d(".wh..wh.plnk").exists());
}

#[test]
fn opaque_markers_set_the_overlay_xattr() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::dir("var/"),
        E::file("var/.wh..wh..opq", b""),
        E::file("var/kept", b"k"),
        E::file("new/dir/.wh..wh..opq", b""),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    assert_eq!(
        lgetxattr(&fx.d("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        lgetxattr(&fx.d("new/dir"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!fx.d("var/.wh..wh..opq").exists());
    assert_eq!(fs::read(fx.d("var/kept")).unwrap(), b"k");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let fx = Fixture::new();
    let layer = Layer::with([
        E::file("a", b"file"),
        E::dir("a/").mode(0o700),
        E::file("a/in", b"1"),
        E::dir("a/").mode(0o750),
        E::dir("b/"),
        E::file("b/deep/x", b"x"),
        E::file("b", b"now a file"),
        E::file("c", b"old"),
        E::file("c", b"new"),
        E::symlink("s", "a"),
        E::file("s", b"not a link"),
        E::file("t", b"t"),
        E::symlink("t", "a"),
    ]);
    fx.unpack(&layer.finish()).unwrap();
    let md = |p: &str| fs::symlink_metadata(fx.d(p)).unwrap();
    assert!(md("a").is_dir());
    assert_eq!(
        md("a").mode() & 0o7777,
        0o750,
        "a directory over a directory merges and takes the new mode"
    );
    assert_eq!(fs::read(fx.d("a/in")).unwrap(), b"1");
    assert_eq!(fs::read(fx.d("b")).unwrap(), b"now a file");
    assert_eq!(fs::read(fx.d("c")).unwrap(), b"new");
    assert!(md("s").is_file());
    assert!(md("t").file_type().is_symlink());
}

#[test]
fn long_names_and_gnu_headers_work() {
    let long_dir = "d".repeat(120);
    let long = format!("{long_dir}/{}", "f".repeat(150));
    let fx = Fixture::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, format!("{long_dir}/link"), "f".repeat(150))
        .unwrap();
    let mut l = Layer::new();
    l.add(E::file(
        &format!("{long_dir}/pax-{}", "p".repeat(140)),
        b"pax",
    ));
    let mut tar = b.into_inner().unwrap();
    tar.truncate(tar.len() - 1024);
    tar.extend(l.finish());
    fx.unpack(&tar).unwrap();
    assert_eq!(fs::read(fx.d(&long)).unwrap(), b"abc");
    assert_eq!(fs::read(fx.d(&format!("{long_dir}/link"))).unwrap(), b"abc");
    assert_eq!(
        fs::read(fx.d(&format!("{long_dir}/pax-{}", "p".repeat(140)))).unwrap(),
        b"pax"
    );
}
