//! Build script of the `berth` package: links the `berth` CLI as a position-dependent
//! executable, unless `BERTH_PIE=1` is set at build time.
//!
//! Why: a position-independent `berth` starts with ~12,000 relative relocations that the
//! dynamic loader applies to ~60 pages of `.data.rel.ro`, each a copy-on-write page fault: 188
//! page faults for `berth --version` against 127 without, and ~0.3 ms of every `berth run`
//! (docs/design.md, "Start latency"). The cost is ASLR of the CLI's own code and data (its
//! heap, stack and libraries stay randomized), as with the non-PIE runc that Debian and docker
//! ship. berthd, the long-running daemon, and netctl stay position-independent.

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let pie_wanted = std::env::var("BERTH_PIE").is_ok_and(|v| v == "1");
    if linux && !pie_wanted {
        println!("cargo:rustc-link-arg-bin=berth=-no-pie");
    }
}
