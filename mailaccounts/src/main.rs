//! mailaccounts: domains and accounts in checkpassword's database (vpopmail's tools).

mod cli;
mod commands;
mod db;
mod maildir;
mod out;
mod password;
mod relay;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(cli::run(&args));
}
