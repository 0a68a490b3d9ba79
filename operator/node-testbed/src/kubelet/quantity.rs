//! Kubernetes resource quantities as the kubelet turns them into cgroup numbers: memory in
//! bytes, CPU in millicores.

/// Bytes of a memory quantity (`64Mi`, `1Gi`, `500M`, `268435456`); `None` when it is
/// not one.
pub fn bytes(text: &str) -> Option<i64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    Some((value * multiplier).ceil() as i64)
}

/// Millicores of a CPU quantity (`10m`, `1`, `0.5`); `None` when it is not one.
pub fn millicores(text: &str) -> Option<i64> {
    match text.strip_suffix('m') {
        Some(milli) => milli.parse().ok(),
        None => text
            .parse::<f64>()
            .ok()
            .map(|cores| (cores * 1000.0).ceil() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_quantities() {
        assert_eq!(bytes("64Mi"), Some(64 << 20));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("500M"), Some(500_000_000));
        assert_eq!(bytes("268435456"), Some(268_435_456));
        assert_eq!(bytes("12Zi"), None);
        assert_eq!(millicores("10m"), Some(10));
        assert_eq!(millicores("1"), Some(1000));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("x"), None);
    }
}
