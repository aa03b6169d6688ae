//! `mailaccounts relay`: POP-before-SMTP's rows and the rules cdb built from them, for
//! each SMTP host of a farm to run against the shared database (vpopmail's
//! `clearopensmtp` is `relay rebuild --expire`).

use std::path::PathBuf;

use clap::Subcommand;
use vpopdb::config::Settings;
use vpopdb::relay::{self, Files, RebuildError};
use vpopdb::store::Conn;

use crate::commands::{Fail, R};
use crate::out::{Cell, Out};

#[derive(Subcommand)]
pub enum RelayCommand {
    /// Show the relay rows, oldest first, and whether each still opens relaying
    List {
        /// Rows younger than this many minutes are open (default: relay_minutes, 180)
        #[arg(long, value_name = "N")]
        minutes: Option<u64>,
    },
    /// Write the rules cdb: the base rules file, then one line per open relay row
    Rebuild {
        /// The base rules file (default: relay_rules, else ~vpopmail/etc/tcp.smtp)
        #[arg(long, value_name = "PATH")]
        rules: Option<PathBuf>,
        /// The cdb to write (default: relay_cdb, else the rules file + .cdb)
        #[arg(long, value_name = "PATH")]
        cdb: Option<PathBuf>,
        /// Rows younger than this many minutes open relaying (default: relay_minutes, 180)
        #[arg(long, value_name = "N")]
        minutes: Option<u64>,
        /// First delete the rows that no longer open relaying, as clearopensmtp does
        #[arg(long)]
        expire: bool,
    },
}

fn minutes(settings: &Settings, m: Option<u64>) -> R<u64> {
    match m {
        Some(0) => Err(Fail::Usage("--minutes: want 1 or more".into())),
        Some(n) => Ok(n),
        None => Ok(settings.relay_minutes),
    }
}

pub fn run(cmd: RelayCommand, settings: &Settings, db: &mut dyn Conn, out: &mut Out) -> R<()> {
    let now = vpopdb::now();
    match cmd {
        RelayCommand::List { minutes: m } => {
            let since = relay::cutoff(now, minutes(settings, m)?);
            let mut rows = relay::rows(db)?;
            rows.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.ip.cmp(&b.ip)));
            let cells = rows
                .iter()
                .map(|r| {
                    vec![
                        Cell::s(&r.ip),
                        Cell::time(r.timestamp),
                        Cell::b(r.timestamp > since && relay::address(&r.ip).is_some()),
                    ]
                })
                .collect();
            out.table(&["ip", "time", "open"], cells);
        }
        RelayCommand::Rebuild {
            rules,
            cdb,
            minutes: m,
            expire,
        } => {
            let m = minutes(settings, m)?;
            let mut s = settings.clone();
            s.relay_rules = rules.or(s.relay_rules);
            s.relay_cdb = cdb.or(s.relay_cdb);
            let files = Files::of(&s);
            let expired = if expire {
                relay::expire(db, now, m)?
            } else {
                0
            };
            let r = relay::rebuild(db, &files, m, now).map_err(|e| match e {
                RebuildError::Rules(_) => Fail::Usage(e.to_string()),
                RebuildError::Db(d) => Fail::from(d),
                RebuildError::Io(_) => Fail::Temp(e.to_string()),
            })?;
            for ip in &r.skipped {
                eprintln!("mailaccounts: warning: relay row {ip:?} holds no address: left out");
            }
            out.record(&[
                ("cdb", Cell::s(&files.cdb.display().to_string())),
                ("rules", Cell::s(&files.rules.display().to_string())),
                ("open", Cell::n(r.open as i64)),
                ("expired", Cell::n(expired as i64)),
                ("skipped", Cell::n(r.skipped.len() as i64)),
            ]);
        }
    }
    Ok(())
}
