//! Progress bars of the long-running commands (`import`, `seed`): one look, whole-number rates.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::fmt::Write;

/// A bar over `total` items of `unit` ("rows", "tiles"), labelled `message`, with the rate
/// and the time left. indicatif draws nothing when stderr is not a terminal, so logs and
/// tests stay clean.
pub fn bar(message: &str, total: u64, unit: &'static str) -> ProgressBar {
    let template =
        format!("{{msg}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{rate}}, ETA {{eta}})");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        // indicatif's own {per_sec} prints four decimals ("3,696.1245/s").
        .with_key("rate", |state: &ProgressState, w: &mut dyn Write| {
            let _ = w.write_str(&rate(state.per_sec()));
        })
        .progress_chars("=> ");
    let bar = ProgressBar::new(total).with_style(style);
    bar.set_message(message.to_owned());
    bar
}

/// A spinner labelled `message` with the time spent, for work whose length is not known
/// (reading and parsing a file). Drawn only when stderr is a terminal, like [`bar`].
pub fn spinner(message: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let spinner = ProgressBar::new_spinner().with_style(style);
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

/// A rate in whole units per second, digits grouped: `3,696/s`.
pub fn rate(per_sec: f64) -> String {
    format!("{}/s", per_second(per_sec))
}

/// A rate in whole units per second, digits grouped: `3,696`. A rate that is not a positive
/// finite number (before a bar's first tick, or a count over 0 s) shows as 0.
pub fn per_second(per_sec: f64) -> String {
    let whole = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    grouped(whole)
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(123_456_789), "123,456,789");
    }

    #[test]
    fn rates_are_whole_units_per_second() {
        assert_eq!(rate(3696.1245), "3,696/s");
        assert_eq!(rate(0.4), "0/s");
        assert_eq!(rate(2.5), "3/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(f64::INFINITY), "0/s");
    }

    #[test]
    fn the_template_parses() {
        // A broken template would fall back to indicatif's default bar without a word.
        let template = "{msg} [{bar:40}] {human_pos}/{human_len} rows ({rate}, ETA {eta})";
        assert!(ProgressStyle::with_template(template).is_ok());
        assert_eq!(bar("f.csv", 10, "rows").length(), Some(10));
        assert!(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").is_ok());
    }
}
