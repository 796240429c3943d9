//! Hidden helper for `bench/unpack-vs-umoci.sh`: unpacks one layer blob into a directory.
//!
//! `cargo run --release --example unpack_layer -- BLOB DEST` (DEST is created if missing; it
//! should be empty). Prints the blob digest, the diff id and the bytes of file data written.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [blob, dest] = args.as_slice() else {
        eprintln!("usage: unpack_layer BLOB DEST");
        return ExitCode::from(2);
    };
    let input = match File::open(blob) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("unpack_layer: cannot open {}: {e}", blob.display());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = fs::create_dir(dest) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            eprintln!("unpack_layer: cannot create {}: {e}", dest.display());
            return ExitCode::from(1);
        }
    }
    match berth::image::unpack::unpack_layer(input, dest) {
        Ok(out) => {
            println!(
                "blob {} ({} bytes)\ndiff_id {}\nwritten {} bytes",
                out.blob_digest, out.blob_size, out.diff_id, out.size
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unpack_layer: {e}");
            ExitCode::from(1)
        }
    }
}
