//! argv0: runs `realname` with argv[0] set to `program`.
use std::os::unix::ffi::OsStrExt;

fn main() {
    let msg = ucspi::msg::Msg::new("argv0");
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() < 2 {
        msg.usage("argv0 realname program [ arg ... ]");
    }
    let e = ucspi::exec::run(&args[0], &args[1..], &ucspi::env::Env::from_process());
    msg.fatal_sys(
        ucspi::msg::EXIT_TEMP,
        &[b"unable to run ", args[0].as_bytes()],
        &e,
    )
}
