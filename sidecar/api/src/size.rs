//! The one parser of byte sizes, for both binaries: the CLI's `--core-max-bytes 4G` and
//! `--go-pprof-max-bytes 64MiB`, and the Kubernetes quantities of a DebugSession and the
//! operator's flags (`512Mi`, `2Gi`).

/// Parses a byte size: bytes (`1048576`), or a number with a binary unit, in any case:
/// `K`, `M`, `G`, `T`, also written `Ki`/`KB`/`KiB`, `Mi`/`MB`/`MiB`… (all powers of 1024).
/// Zero is refused: no cap or budget of zero bytes makes sense.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!(
            "{text:?} is not a size: give bytes, or a number with K, M, G or T (powers of 1024, \
             also written Ki, Mi, Gi, Ti)"
        )
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.strip_suffix('b').unwrap_or(&unit) {
        "" => 0,
        "k" | "ki" => 10,
        "m" | "mi" => 20,
        "g" | "gi" => 30,
        "t" | "ti" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown size unit {unit:?} (use K, M, G or T, or Ki, Mi, Gi, Ti)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_in_every_spelling() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("1Ti"), Ok(1 << 40));
        assert_eq!(parse_size("1000"), Ok(1000));
    }

    #[test]
    fn nonsense_and_zero_are_refused() {
        for bad in [
            "0",
            "0Gi",
            "12 parsecs",
            "",
            "Gi",
            "1.5G",
            "-1",
            "99999999999T",
            "4Gb2",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
