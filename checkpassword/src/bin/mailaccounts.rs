//! mailaccounts: domains and accounts in checkpassword's database (vpopmail's tools).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(checkpassword::accounts::run(&args));
}
