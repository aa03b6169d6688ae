//! The command line: subcommands (each with `--help`) through clap, `--json` anywhere on
//! the line, and the exit codes vpopmail's tools have: 100 for bad usage or a permanent
//! failure, 111 for a temporary one; clap's own errors are usage errors too.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

use crate::commands::{self, Fail};

pub const EXIT_OK: i32 = 0;
pub const EXIT_USAGE: i32 = 100;
pub const EXIT_TEMP: i32 = 111;

/// vpopmail's account tools (vadddomain, vadduser, vpasswd, vmoduser, vsetuserquota,
/// vuserinfo) as one command over checkpassword's database.
#[derive(Parser)]
#[command(
    name = "mailaccounts",
    disable_version_flag = true,
    args_override_self = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    /// One JSON document for scripts instead of text (anywhere on the line)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the tables that are missing (and, for SQLite, the database file)
    Init,
    /// Add a domain: its users/assign entry, directory and (per-domain layout) table
    AddDomain {
        domain: String,
        /// Owner of the domain's mail: a number or a user name
        #[arg(long, value_name = "N|NAME")]
        uid: String,
        /// Group of the domain's mail: a number or a group name
        #[arg(long, value_name = "N|NAME")]
        gid: String,
        /// The domain's directory (missing parents are made)
        #[arg(long, value_name = "PATH")]
        dir: String,
    },
    /// Delete a domain, its accounts and its users/assign entry
    DelDomain {
        domain: String,
        /// Remove the domain's directory too
        #[arg(long)]
        remove_dir: bool,
    },
    /// List the domains of users/assign
    Domains,
    /// A domain's limits (vlimits): show them, set them with +NAME -NAME NAME=N, del
    Limits {
        #[command(subcommand)]
        command: crate::limits::LimitsCommand,
    },
    /// Add an account; the password is read from the terminal or stdin
    Add {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        /// Hash method: yescrypt, argon2id, sha512, sha256, bcrypt, md5
        #[arg(long, value_name = "METHOD")]
        hash: Option<String>,
        /// Quota: NOQUOTA, 50M, 1000000S, 1000000S,500C
        #[arg(long, value_name = "Q")]
        quota: Option<String>,
        /// Full name (pw_gecos)
        #[arg(long, value_name = "TEXT")]
        gecos: Option<String>,
        /// Flags to set, as +NAME separated by commas or spaces
        #[arg(long, value_name = "+NAME...")]
        flags: Option<String>,
    },
    /// Delete an account
    Del {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        /// Remove the user's directory too
        #[arg(long)]
        remove_dir: bool,
    },
    /// Change a password; the new one is read from the terminal or stdin
    Passwd {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        /// Hash method: yescrypt, argon2id, sha512, sha256, bcrypt, md5
        #[arg(long, value_name = "METHOD")]
        hash: Option<String>,
    },
    /// Set a quota (NOQUOTA, 50M, 1000000S, 1000000S,500C)
    Quota {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        quota: String,
    },
    /// Show an account's flags, or change them with +NAME and -NAME
    Flags {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        #[arg(
            value_name = "+NAME|-NAME",
            allow_hyphen_values = true,
            trailing_var_arg = true
        )]
        changes: Vec<String>,
    },
    /// Show an account
    Show {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
    },
    /// List the accounts of a domain, or of all
    List { domain: Option<String> },
    /// Lift checkpassword's lockout of an account (from one address, or all)
    Unlock {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        ip: Option<String>,
    },
    /// Show the last logins (lastauth)
    Lastauth {
        #[arg(value_name = "DOMAIN|USER@DOMAIN")]
        scope: Option<String>,
    },
    /// App passwords (our extension): extra passwords for one device, service and network
    #[command(subcommand)]
    AppPassword(crate::app_password::Action),
    /// Show the change log
    Log {
        #[arg(value_name = "DOMAIN|USER@DOMAIN")]
        scope: Option<String>,
        /// At most this many entries, the latest
        #[arg(long, value_name = "N")]
        limit: Option<String>,
    },
    /// POP-before-SMTP: the relay rows, and the rules cdb that opens relaying for them
    Relay {
        #[command(subcommand)]
        command: crate::relay::RelayCommand,
    },
    /// Print a Dovecot or Postfix configuration that reads these tables
    Config {
        #[command(subcommand)]
        server: ConfigServer,
    },
}

/// The servers `config` prints for.
#[derive(Subcommand)]
pub enum ConfigServer {
    /// Dovecot's SQL passdb and userdb (2.3 or 2.4 syntax)
    Dovecot {
        /// Dovecot's configuration syntax: 2.3 or 2.4
        #[arg(long = "version", value_name = "2.3|2.4", default_value = "2.3")]
        version: String,
        #[command(flatten)]
        opts: ConfigOpts,
    },
    /// Postfix's domain and mailbox maps and a POP-before-SMTP access map
    Postfix {
        /// A relay row older than this many minutes no longer allows relaying
        #[arg(long, value_name = "N", default_value = "180")]
        minutes: String,
        #[command(flatten)]
        opts: ConfigOpts,
    },
}

#[derive(clap::Args)]
pub struct ConfigOpts {
    /// Put the database password in (otherwise a placeholder stands in its place)
    #[arg(long)]
    pub with_password: bool,
    /// Write the files into DIR instead of printing them
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// Runs `mailaccounts ARGS`; returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let mut words: Vec<String> = Vec::with_capacity(args.len());
    for a in args {
        match a.clone().into_string() {
            Ok(s) => words.push(s),
            Err(_) => {
                eprintln!("mailaccounts: fatal: arguments must be UTF-8");
                return EXIT_USAGE;
            }
        }
    }
    // Anywhere on the line, as it always was: also among flags' operands and after `--`.
    let json = words.iter().skip(1).any(|a| a == "--json");
    words.retain(|a| a != "--json");
    let cli = match Cli::try_parse_from(&words) {
        Ok(c) => c,
        Err(e) => return clap_error(&e),
    };
    match commands::run(cli.command, json || cli.json) {
        Ok(()) => EXIT_OK,
        Err(Fail::Usage(m)) => {
            eprintln!("mailaccounts: fatal: {m}");
            EXIT_USAGE
        }
        Err(Fail::Temp(m)) => {
            eprintln!("mailaccounts: fatal: {m}");
            EXIT_TEMP
        }
    }
}

/// Help on stdout (exit 0); anything else clap refuses as a usage error: one fatal line
/// in the tool's words, then the usage it concerns (exit 100).
fn clap_error(e: &clap::Error) -> i32 {
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp => {
            print!("{text}");
            return EXIT_OK;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            eprint!("mailaccounts: fatal: usage: mailaccounts [--json] COMMAND ...\n\n{text}");
            return EXIT_USAGE;
        }
        _ => {}
    }
    let first = match (e.kind(), e.get(ContextKind::InvalidSubcommand)) {
        (ErrorKind::InvalidSubcommand, Some(ContextValue::String(c))) => {
            format!("unknown command {c:?}")
        }
        // clap's message up to its first blank line, on one line.
        _ => {
            let words: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
            let line = words.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            line.strip_prefix("error: ").unwrap_or(&line).to_string()
        }
    };
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .unwrap_or("mailaccounts [--json] COMMAND ...");
    eprintln!("mailaccounts: fatal: {first}\nusage: {usage}\n(mailaccounts help COMMAND for more)");
    EXIT_USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ErrorKind> {
        let mut v = vec!["mailaccounts"];
        v.extend(args);
        Cli::try_parse_from(v)
            .map(|c| c.command)
            .map_err(|e| e.kind())
    }

    #[test]
    fn command_lines() {
        match parse(&["flags", "a@b.example", "-NO_POP", "+NO_SMTP"]) {
            Ok(Command::Flags { login, changes }) => {
                assert_eq!(login, "a@b.example");
                assert_eq!(changes, ["-NO_POP", "+NO_SMTP"]);
            }
            _ => panic!("flags"),
        }
        match parse(&["add", "--quota", "5M", "a@b.example", "--quota=7M"]) {
            Ok(Command::Add { login, quota, .. }) => {
                assert_eq!(
                    (login.as_str(), quota.as_deref()),
                    ("a@b.example", Some("7M"))
                );
            }
            _ => panic!("add"),
        }
        assert_eq!(
            parse(&["add", "a@b.example", "pw-on-argv"]).err(),
            Some(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            parse(&["frobnicate"]).err(),
            Some(ErrorKind::InvalidSubcommand)
        );
        assert_eq!(parse(&["--help"]).err(), Some(ErrorKind::DisplayHelp));
        assert_eq!(parse(&["help", "add"]).err(), Some(ErrorKind::DisplayHelp));
        assert_eq!(
            parse(&["del", "--help"]).err(),
            Some(ErrorKind::DisplayHelp)
        );
        assert!(parse(&["--json", "list"]).is_ok());
        match parse(&["config", "dovecot", "--version", "2.4", "--out", "/x"]) {
            Ok(Command::Config {
                server: ConfigServer::Dovecot { version, opts },
            }) => {
                assert_eq!(version, "2.4");
                assert_eq!(opts.out.as_deref(), Some(std::path::Path::new("/x")));
                assert!(!opts.with_password);
            }
            _ => panic!("config dovecot"),
        }
        assert!(matches!(
            parse(&["config", "postfix", "--with-password"]),
            Ok(Command::Config {
                server: ConfigServer::Postfix { .. }
            })
        ));
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
