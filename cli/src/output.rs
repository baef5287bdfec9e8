//! Output helpers: stdout that treats a closed pipe as the reader being done, byte and time
//! formatting, JSON printing.

use std::io::{self, BufWriter, Stdout, Write};

use serde::Serialize;

use crate::exit::{CliError, CliResult, Code};

/// Buffered stdout.
pub type Out = BufWriter<Stdout>;

/// A buffered stdout.
pub fn stdout() -> Out {
    BufWriter::with_capacity(64 << 10, io::stdout())
}

/// Maps a stdout write error: a closed pipe (`walden dump | head`) ends the command quietly
/// with exit code 0; anything else is a failure.
pub fn out_err(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::new(Code::Ok, "")
    } else {
        CliError::new(Code::Failure, format!("cannot write to stdout: {e}"))
    }
}

/// `writeln!` to an [`Out`], mapping errors with [`out_err`].
#[macro_export]
macro_rules! outln {
    ($w:expr) => { ::std::io::Write::write_all($w, b"\n").map_err($crate::output::out_err) };
    ($w:expr, $($arg:tt)*) => { ::std::io::Write::write_fmt($w, format_args!("{}\n", format_args!($($arg)*))).map_err($crate::output::out_err) };
}

/// Maps a JSON write error: an I/O error as [`out_err`] does, anything else is a failure.
fn json_err(e: serde_json::Error) -> CliError {
    match e.io_error_kind() {
        Some(kind) => out_err(io::Error::from(kind)),
        None => CliError::new(Code::Failure, format!("cannot render JSON: {e}")),
    }
}

/// Prints one JSON value on its own line.
pub fn json_line(out: &mut Out, value: &impl Serialize) -> CliResult {
    serde_json::to_writer(&mut *out, value).map_err(json_err)?;
    outln!(out)
}

/// Prints a JSON document (pretty) and a newline.
pub fn json_doc(out: &mut Out, value: &impl Serialize) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, value).map_err(json_err)?;
    outln!(out)
}

/// Prints `s` as it is (a rendered [`table`], say).
pub fn write_str(out: &mut Out, s: &str) -> CliResult {
    out.write_all(s.as_bytes()).map_err(out_err)
}

/// Flushes stdout.
pub fn finish(mut out: Out) -> CliResult {
    out.flush().map_err(out_err)
}

/// Prints a command's result on stdout and flushes it: the JSON document with `--json`, else the
/// text `print` writes.
pub fn emit<T: Serialize>(json: bool, value: &T, print: impl FnOnce(&mut Out, &T) -> CliResult) -> CliResult {
    let mut out = stdout();
    if json {
        json_doc(&mut out, value)?;
    } else {
        print(&mut out, value)?;
    }
    finish(out)
}

/// The closing summary of a command whose stdout carries a stream (events, archive runs): on
/// stderr, one JSON line with `--json`, else the line `text` renders.
pub fn summary<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        eprintln!("{}", serde_json::to_string(value).unwrap_or_default());
    } else {
        eprintln!("{}", text(value));
    }
}

/// `1 batch`, `2 batches`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1.5 MiB`, `812 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Parses an LSN argument: a positive decimal integer (LSNs start at 1).
pub fn parse_lsn(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("LSNs start at 1".to_string()),
        Ok(lsn) if lsn <= walden_wal::format::MAX_LSN => Ok(lsn),
        Ok(_) => Err(format!("LSNs end at {}", walden_wal::format::MAX_LSN)),
        Err(_) => Err(format!("{s:?} is not an LSN (a positive decimal integer)")),
    }
}

/// ISO-8601 UTC of µs since the Unix epoch.
pub fn time(us: u64) -> String {
    walden_cdc::envelope::iso8601_from_us(us)
}

/// `not set` or the LSN.
pub fn opt_lsn(lsn: Option<u64>) -> String {
    lsn.map_or_else(|| "not set".to_string(), |l| l.to_string())
}

/// Renders rows as left-aligned columns separated by two spaces (no trailing spaces).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_formatting() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
    }

    #[test]
    fn lsn_parsing() {
        assert_eq!(parse_lsn("42"), Ok(42));
        assert!(parse_lsn("0").is_err());
        assert!(parse_lsn("-1").is_err());
        assert!(parse_lsn("0/16B3748").is_err());
        assert!(parse_lsn("18446744073709551615").is_err());
    }

    /// `time` is the change events' timestamp format (`walden_cdc::envelope::iso8601_from_us`,
    /// hand-written calendar arithmetic): it must agree with chrono's calendar everywhere.
    #[test]
    fn times_are_iso8601_utc_milliseconds_on_chronos_calendar() {
        use chrono::{DateTime, Datelike, Timelike};
        let by_chrono = |us: u64| {
            let t = DateTime::from_timestamp_micros(i64::try_from(us).expect("in range")).expect("in range");
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_millis()
            )
        };
        let day_us: u64 = 86_400 * 1_000_000;
        let mut samples = vec![0, 1, 999, 1_000, 999_999, 1_000_000, day_us - 1, day_us];
        for date in ["1972-02-29", "1999-12-31", "2000-02-29", "2000-03-01", "2024-02-29", "2100-02-28", "2100-03-01"] {
            let midnight = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
            let us = midnight.and_hms_opt(0, 0, 0).expect("time").and_utc().timestamp_micros() as u64;
            samples.extend([us - 1, us, us + 999, us + 1_000, us + day_us - 1]);
        }
        // And a spread up to the end of year 9999 (later years take five digits).
        let end_us = 253_402_300_800_000_000u64;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            samples.push(x % end_us);
        }
        samples.push(end_us - 1);
        for us in samples {
            assert_eq!(time(us), by_chrono(us), "{us} µs");
        }
        assert_eq!(time(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(time(end_us - 1), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()], vec!["z".into(), "".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }
}
