//! checkpassword prog [args...]: credentials on fd 3, the program run on success.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    ucspi::msg::exit(checkpassword::run::run(&args));
}
