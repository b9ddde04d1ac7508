//! Reads by part number (`GET`/`HEAD ?partNumber=N`): the bytes of part N of an object
//! completed from a multipart upload, as S3 serves them.
//!
//! Where the part sizes are kept, without changing any stored entry's layout: in the
//! object's metadata under `PARTS_KEY` (a leading space: no client header can name it), run-
//! length encoded — `size*count` runs joined by commas, since parts are nearly always equal
//! but the last (`5242880*19,1234` for twenty parts) — written by CompleteMultipartUpload
//! and carried by copies (it describes the bytes, as a checksum does).
//!
//! S3's rules: a part read is a ranged read (206 with `Content-Range`) and says how many
//! parts the object has (`x-amz-mp-parts-count`); an object not made of parts has one, the
//! whole object, and sends no parts count; a part beyond the last is 416
//! `InvalidPartNumber`; a `Range` header with `partNumber` is 400 `InvalidRequest`. Objects
//! completed before this key existed read as one part.

use std::collections::BTreeMap;

use super::error::S3Error;

/// The metadata name of an object's part sizes.
pub const PARTS_KEY: &str = " parts";

/// `sizes` in the stored form.
pub fn encode(sizes: &[u64]) -> String {
    let mut runs: Vec<(u64, usize)> = Vec::new();
    for &size in sizes {
        match runs.last_mut() {
            Some((last, count)) if *last == size => *count += 1,
            _ => runs.push((size, 1)),
        }
    }
    let run = |(size, count): &(u64, usize)| match count {
        1 => size.to_string(),
        _ => format!("{size}*{count}"),
    };
    runs.iter().map(run).collect::<Vec<_>>().join(",")
}

/// The part sizes in `stored`; `None` if it is not something `encode` wrote.
pub fn decode(stored: &str) -> Option<Vec<u64>> {
    let mut sizes = Vec::new();
    for run in stored.split(',') {
        let (size, count): (u64, usize) = match run.split_once('*') {
            Some((size, count)) => (size.parse().ok()?, count.parse().ok()?),
            None => (run.parse().ok()?, 1),
        };
        if count == 0 || sizes.len() + count > super::router::PART_NUMBER_MAX as usize {
            return None;
        }
        sizes.extend(std::iter::repeat_n(size, count));
    }
    Some(sizes)
}

/// Which bytes part `number` of an object is.
#[derive(Debug, PartialEq, Eq)]
pub struct PartRange {
    /// Byte offsets, end exclusive.
    pub start: u64,
    pub end: u64,
    /// The object's parts, for `x-amz-mp-parts-count` (`None`: not made of parts).
    pub parts_count: Option<usize>,
}

/// The part sizes of an object of `size_bytes` with `user_metadata`; `None` for an object
/// not made of parts. Stored sizes that do not add up to the object are not trusted (never
/// seen; a part read must not serve bytes of another part).
pub fn part_sizes(user_metadata: &BTreeMap<String, String>, size_bytes: u64) -> Option<Vec<u64>> {
    let sizes = user_metadata.get(PARTS_KEY).and_then(|s| decode(s))?;
    (sizes.iter().sum::<u64>() == size_bytes).then_some(sizes)
}

/// Part `number` of an object of `size_bytes` with `user_metadata`, or `InvalidPartNumber`.
pub fn part_range(
    user_metadata: &BTreeMap<String, String>,
    size_bytes: u64,
    number: u32,
) -> Result<PartRange, S3Error> {
    let sizes = part_sizes(user_metadata, size_bytes);
    let index = number as usize - 1;
    match sizes {
        Some(sizes) if index < sizes.len() => {
            let start: u64 = sizes[..index].iter().sum();
            let end = start + sizes[index];
            Ok(PartRange { start, end, parts_count: Some(sizes.len()) })
        }
        None if number == 1 => Ok(PartRange { start: 0, end: size_bytes, parts_count: None }),
        _ => Err(S3Error::InvalidPartNumber),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_in_runs() {
        let mib5 = 5 * 1024 * 1024;
        let cases: [&[u64]; 4] = [&[7], &[mib5, mib5, mib5, 12], &[1, 2, 2, 1], &[mib5; 10_000]];
        for sizes in cases {
            let stored = encode(sizes);
            assert_eq!(decode(&stored).as_deref(), Some(sizes), "{stored}");
        }
        assert_eq!(encode(&[mib5, mib5, mib5, 12]), "5242880*3,12");
        for bad in ["", "x", "5*", "5*0", "1*10001", "-1", "3,,4"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parts_are_ranges_and_one_beyond_the_last_is_refused() {
        let meta: BTreeMap<String, String> = [(PARTS_KEY.to_string(), "10*2,3".into())].into();
        let part = |n| part_range(&meta, 23, n);
        assert_eq!(part(1), Ok(PartRange { start: 0, end: 10, parts_count: Some(3) }));
        assert_eq!(part(3), Ok(PartRange { start: 20, end: 23, parts_count: Some(3) }));
        assert_eq!(part(4), Err(S3Error::InvalidPartNumber));
        // Not made of parts: part 1 is the whole object, there is no part 2.
        let plain = BTreeMap::new();
        assert_eq!(part_range(&plain, 9, 1), Ok(PartRange { start: 0, end: 9, parts_count: None }));
        assert_eq!(part_range(&plain, 9, 2), Err(S3Error::InvalidPartNumber));
        // Sizes that do not add up to the object are ignored.
        assert_eq!(part_range(&meta, 24, 1).unwrap().parts_count, None);
    }
}
