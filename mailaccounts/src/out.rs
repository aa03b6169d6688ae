//! Output: aligned tables for people, one JSON document for scripts (`--json`).

use std::fmt::Write as _;

pub enum Cell {
    Null,
    S(String),
    N(i64),
    B(bool),
    List(Vec<String>),
    /// Unix time: printed as UTC for people, as a number in JSON.
    Time(i64),
}

impl Cell {
    pub fn s(s: &str) -> Cell {
        Cell::S(s.to_string())
    }
    pub fn n(n: i64) -> Cell {
        Cell::N(n)
    }
    pub fn b(b: bool) -> Cell {
        Cell::B(b)
    }
    pub fn list(l: &[String]) -> Cell {
        Cell::List(l.to_vec())
    }
    pub fn time(t: i64) -> Cell {
        Cell::Time(t)
    }

    fn human(&self) -> String {
        match self {
            Cell::Null => "-".into(),
            Cell::S(s) if s.is_empty() => "-".into(),
            Cell::S(s) => s
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
            Cell::N(n) => n.to_string(),
            Cell::B(b) => if *b { "yes" } else { "no" }.into(),
            Cell::List(l) if l.is_empty() => "-".into(),
            Cell::List(l) => l.join(","),
            Cell::Time(t) => utc(*t),
        }
    }

    fn json(&self) -> String {
        match self {
            Cell::Null => "null".into(),
            Cell::S(s) => quote(s),
            Cell::N(n) | Cell::Time(n) => n.to_string(),
            Cell::B(b) => b.to_string(),
            Cell::List(l) => format!(
                "[{}]",
                l.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (Howard Hinnant's civil-from-days).
pub fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub struct Out {
    json: bool,
    buf: String,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            buf: String::new(),
        }
    }

    pub fn message(&mut self, m: &str) {
        if self.json {
            let _ = writeln!(self.buf, "{{\"ok\":true,\"message\":{}}}", quote(m));
        } else {
            let _ = writeln!(self.buf, "{m}");
        }
    }

    pub fn flags(&mut self, login: &str, names: &[String]) {
        if self.json {
            let _ = writeln!(
                self.buf,
                "{{\"login\":{},\"flags\":{}}}",
                quote(login),
                Cell::list(names).json()
            );
        } else {
            let _ = writeln!(self.buf, "{login}: {}", Cell::list(names).human());
        }
    }

    pub fn record(&mut self, fields: &[(&str, Cell)]) {
        if self.json {
            let f: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), v.json()))
                .collect();
            let _ = writeln!(self.buf, "{{{}}}", f.join(","));
        } else {
            let w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in fields {
                let _ = writeln!(self.buf, "{k:<w$}  {}", v.human());
            }
        }
    }

    pub fn table(&mut self, head: &[&str], rows: Vec<Vec<Cell>>) {
        if self.json {
            let objs: Vec<String> = rows
                .iter()
                .map(|r| {
                    let f: Vec<String> = head
                        .iter()
                        .zip(r)
                        .map(|(k, v)| format!("{}:{}", quote(k), v.json()))
                        .collect();
                    format!("{{{}}}", f.join(","))
                })
                .collect();
            let _ = writeln!(self.buf, "[{}]", objs.join(","));
            return;
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(Cell::human).collect())
            .collect();
        let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for r in &cells {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &[String]| {
            let mut s = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    s.push_str(c);
                } else {
                    let _ = write!(s, "{c:<0$}  ", w[i]);
                }
            }
            s.trim_end().to_string()
        };
        let h: Vec<String> = head.iter().map(|h| h.to_uppercase()).collect();
        let _ = writeln!(self.buf, "{}", line(&h));
        for r in &cells {
            let _ = writeln!(self.buf, "{}", line(r));
        }
    }

    /// Prints what was gathered (only after the command succeeded).
    pub fn flush(self) {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(self.buf.as_bytes());
        let _ = o.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\u0001\"");
    }
}
