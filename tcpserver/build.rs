//! Links the tcpserver binary as a static PIE (glibc's libc.a), the library and the
//! tests as before. A process that forks once per connection pays, in the kernel, for
//! each of its mappings and for the page tables of what it wrote; without ld.so and
//! libc.so it has 11 mappings instead of 23 (see bench/tcpserver/README.md).
//!
//! rustc's link line asks for `-Bdynamic -lgcc_s -lc ...` (only `+crt-static`, a
//! target-wide flag, changes that), so a directory of its own that holds the static
//! archives under those names comes first in the search path: libgcc_s is an empty
//! archive (libgcc_eh, already on the line, has the unwinder). Where the compiler has no
//! libc.a the binary links dynamically, as before.
//!
//! Still position-independent: a static non-PIE build wrote 20 kB less (no RELRO
//! relocations) but would put the code at a fixed address, in a server whose children
//! parse DNS, ident and PROXY bytes from the network.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("static-libs");
    match static_libs(&out) {
        Ok(()) => {
            println!("cargo:rustc-link-arg-bin=tcpserver=-L{}", out.display());
            println!("cargo:rustc-link-arg-bin=tcpserver=-static-pie");
        }
        Err(why) => println!("cargo:warning=tcpserver links dynamically: {why}"),
    }
    order_text();
}

/// With rustc's own lld (the default linker of x86_64-unknown-linux-gnu since Rust 1.90),
/// the functions of `text-order.txt` go first and together in the text (made by
/// `bench/tcpserver/text-order.sh`; why there). Names the build no longer has are
/// skipped. Another linker (set by RUSTFLAGS or the target's linker variable) gets no
/// such option, and the text is laid out as the linker likes.
fn order_text() {
    println!("cargo:rerun-if-changed=text-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_lld = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_none()
        && !flags.contains("linker")
        && rustc_minor().is_some_and(|m| m >= 90);
    let list = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("text-order.txt");
    if own_lld && list.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=tcpserver=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=tcpserver=-Wl,--no-warn-symbol-ordering");
    }
}

/// The minor version of the rustc that builds this (`rustc 1.95.0 (...)`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}

/// Fills `dir` with the static archives standing in for the libraries rustc names.
fn static_libs(dir: &Path) -> Result<(), String> {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return Err("not a linux-gnu target".into());
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for lib in ["c", "m", "rt", "dl", "util", "pthread"] {
        let name = format!("lib{lib}.a");
        let o = Command::new(&cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .map_err(|e| format!("{cc}: {e}"))?;
        let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if !path.is_absolute() {
            return Err(format!("{cc} has no {name}"));
        }
        std::os::unix::fs::symlink(&path, dir.join(&name)).map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("libgcc_s.a"), b"!<arch>\n").map_err(|e| e.to_string())
}
