//! checkpassword prog [args...]: credentials on fd 3, the program run on success.
//!
//! No Rust runtime start-up: std's (the main thread's stack guard, which reads
//! /proc/self/maps, an alternate signal stack and its handlers) cost ~0.2 ms of every
//! login. What of it matters is done by `setup::process_start`: fds 0-2 made sure to be
//! open and SIGPIPE ignored, as std does. Arguments still come from std, which glibc
//! hands them to before `main`.
#![no_main]

#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    checkpassword::setup::process_start();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    ucspi::msg::exit(checkpassword::run::run(&args));
}
