//! `limits`: a domain's vpopmail limits (vlimits), shown as checkpassword applies them
//! (the `limits` row, else `.qmailadmin-limits`, else `vlimits.default`) and set in the
//! `limits` table, as vpopmail's `vlimits` program does with `--enable-mysql-limits`.

use clap::Subcommand;
use vpopdb::flags_quota::flag_names;
use vpopdb::limits::{self, Limits, Source, NUMBERS, SWITCHES};
use vpopdb::store::{Conn, DbError, Val};

use crate::commands::{names_or_none, parse_domain, usage, Ctx, Fail, R};
use crate::out::Cell;

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Show a domain's limits and where they come from
    Show { domain: String },
    /// Change a domain's limits with +NAME and -NAME (disable_pop or NO_POP, ...) and
    /// NAME=N (maxpopaccounts=100, ...), starting from those in force
    Set {
        domain: String,
        #[arg(
            value_name = "+NAME|-NAME|NAME=N",
            allow_hyphen_values = true,
            trailing_var_arg = true,
            required = true
        )]
        changes: Vec<String>,
    },
    /// Delete a domain's row: its limits come from its files again
    Del { domain: String },
}

pub fn run(c: &mut Ctx, cmd: LimitsCommand) -> R<()> {
    match cmd {
        LimitsCommand::Show { domain } => {
            let d = parse_domain(&domain)?;
            let (l, src) = in_force(c, &d)?;
            show(c, &d, &l, &src);
        }
        LimitsCommand::Set { domain, changes } => {
            let d = parse_domain(&domain)?;
            c.domain(&d)?;
            let (old, _) = in_force(c, &d)?;
            let mut new = old.clone();
            limits::apply_changes(&mut new, &changes).map_err(Fail::Usage)?;
            let (sql, params) = limits::upsert(c.db.kind(), &d, &new);
            match c.db.exec(&sql, &params) {
                Err(DbError::NoTable) => {
                    c.db.exec(&limits::create_sql(c.db.kind()), &[])?;
                    c.db.exec(&sql, &params)?
                }
                r => r?,
            };
            c.log("", &d, "limits", &changed(&old, &new))?;
            show(c, &d, &new, &Source::Table);
        }
        LimitsCommand::Del { domain } => {
            let d = parse_domain(&domain)?;
            if delete_row(c.db.as_mut(), &d)? == 0 {
                return usage(format!("{d} has no row in the limits table"));
            }
            c.log("", &d, "limits", "row deleted")?;
            c.out.message(&format!("limits row of {d} deleted"));
        }
    }
    Ok(())
}

/// Deletes `domain`'s row (as vpopmail's vdeldomain does with the domain); returns how
/// many there were.
pub fn delete_row(db: &mut dyn Conn, domain: &str) -> Result<u64, DbError> {
    let k = db.kind();
    let sql = format!(
        "DELETE FROM {} WHERE {} = ?",
        k.ident(limits::TABLE),
        k.ident("domain")
    );
    match db.exec(&sql, &[Val::text(domain)]) {
        Err(DbError::NoTable) => Ok(0),
        r => r,
    }
}

/// The limits a login in `d` gets, as checkpassword finds them.
fn in_force(c: &mut Ctx, d: &str) -> R<(Limits, Source)> {
    let (sql, params) = limits::query(c.db.kind(), d);
    let row = limits::read(c.db.query(&sql, &params))?;
    let home = c.settings.vpopmail_home();
    let dir = match c.domain(d) {
        Ok(a) => a.dir,
        Err(_) => home.join("domains").join(d),
    };
    limits::resolve(row, &limits::files(&dir, &home)).map_err(Fail::Temp)
}

fn show(c: &mut Ctx, d: &str, l: &Limits, src: &Source) {
    let source = match src {
        Source::Table => "table".to_string(),
        Source::File(p) => p.display().to_string(),
        Source::Builtin => "none".to_string(),
    };
    let mut fields = vec![
        ("domain", Cell::s(d)),
        ("source", Cell::s(&source)),
        ("flags", Cell::list(&flag_names(l.mask))),
    ];
    for s in SWITCHES {
        fields.push((s.name, Cell::b(l.mask & s.value != 0)));
    }
    for (n, v) in NUMBERS.iter().zip(&l.numbers) {
        fields.push((n.name, Cell::n(*v)));
    }
    c.out.record(&fields);
}

/// The change log's text: the switches before and after, and the numbers that changed.
fn changed(old: &Limits, new: &Limits) -> String {
    let mut parts = vec![format!(
        "{} -> {}",
        names_or_none(old.mask),
        names_or_none(new.mask)
    )];
    for (i, n) in NUMBERS.iter().enumerate() {
        if old.numbers[i] != new.numbers[i] {
            parts.push(format!(
                "{} {} -> {}",
                n.name, old.numbers[i], new.numbers[i]
            ));
        }
    }
    parts.join("; ")
}
