//! Number formatting for messages and reports (`1,204`, `45.2 MiB`, `20 s`), and the
//! parsing of sizes given on the command line.

/// An integer with thousands separators: `1204` → `1,204`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in binary units: `47395635` → `45.2 MiB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    let mut scaled = value as f64 / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

/// A duration in seconds, short: `20 s`, `2.5 s`, `3 min`, `1.5 h`.
pub fn seconds(value: f64) -> String {
    if value >= 5400.0 {
        format!("{:.1} h", value / 3600.0)
    } else if value >= 90.0 {
        format!("{:.0} min", value / 60.0)
    } else if value >= 10.0 || (value - value.round()).abs() < 0.05 {
        format!("{value:.0} s")
    } else {
        format!("{value:.1} s")
    }
}

/// A rate per second with sensible precision: `16.3/s`, `0.25/s`.
pub fn rate(per_second: f64) -> String {
    if per_second.abs() >= 10.0 {
        format!("{per_second:.0}/s")
    } else if per_second.abs() >= 1.0 {
        format!("{per_second:.1}/s")
    } else {
        format!("{per_second:.2}/s")
    }
}

pub use procshot_api::size::parse_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1204), "1,204");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(47_395_635), "45.2 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(seconds(20.0), "20 s");
        assert_eq!(seconds(2.5), "2.5 s");
        assert_eq!(seconds(180.0), "3 min");
        assert_eq!(seconds(7200.0), "2.0 h");
        assert_eq!(rate(16.33), "16/s");
        assert_eq!(rate(1.26), "1.3/s");
        assert_eq!(rate(0.25), "0.25/s");
    }
}
