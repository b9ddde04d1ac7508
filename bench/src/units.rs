//! Human units on the command line: sizes (`4KiB`, `1MiB`, `1048576`) and durations
//! (`500ms`, `30s`, `2m`).

use std::time::Duration;

pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: usize = number.parse().map_err(|_| format!("`{text}` is not a size (e.g. 4KiB)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("`{other}` is not a size unit (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
}

/// `SIZE` or `MIN..MAX` (inclusive).
pub fn parse_size_range(text: &str) -> Result<(usize, usize), String> {
    let (lo, hi) = match text.split_once("..") {
        Some((a, b)) => (parse_size(a)?, parse_size(b)?),
        None => {
            let n = parse_size(text)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("`{text}`: the minimum is above the maximum"));
    }
    Ok((lo, hi))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration (e.g. 30s)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        other => Err(format!("`{other}` is not a duration unit (ms, s, m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size_range("4KiB..1MiB").unwrap(), (4096, 1 << 20));
        assert!(parse_size_range("1MiB..4KiB").is_err());
        assert!(parse_size("4XB").unwrap_err().contains("size unit"));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2h").is_err());
    }
}
