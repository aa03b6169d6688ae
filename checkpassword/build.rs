//! Places the C functions a login runs (hot-symbols.txt: bundled SQLite, libxcrypt) side
//! by side at the start of the program text, so that starting checkpassword faults in a
//! few dozen pages of code rather than pages spread over 1.7 MB: 7 page faults fewer and
//! ~0.06 ms less a login on the benchmark VM (bench/checkpassword/ab.sh);
//! bench/checkpassword/hot-symbols.sh regenerates the list.
//!
//! Only where the linker is LLD (the only linker here with a symbol ordering file), which
//! is rustc's default for x86_64-unknown-linux-gnu since Rust 1.90 unless a linker was
//! chosen; anywhere else the program links as before, just without the ordering.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-changed=build.rs");
    if !links_with_rust_lld() {
        return;
    }
    let list =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("hot-symbols.txt");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    // A function the list names but this build lacks (another SQLite version) is skipped.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

fn links_with_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    // A linker chosen in cargo's configuration, or linker flags of one's own.
    if env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("link-self-contained") {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .lines()
        .find_map(|l| l.strip_prefix("release: 1."))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
