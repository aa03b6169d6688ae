//! mailaccounts: domains and accounts in checkpassword's database (vpopmail's tools).

mod app_password;
mod cli;
mod commands;
mod db;
mod limits;
mod maildir;
mod out;
mod password;
mod relay;
mod server_config;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(cli::run(&args));
}
