//! Writing a large, fsynced file with `O_DIRECT`, straight from our buffer to the disk.
//!
//! Why: a block file is written once, fsynced at once, and then read rarely (a GET of that
//! object, the scrub). Through the page cache, the kernel first copies every byte into
//! freshly allocated cache pages, and that copy was the largest single cost of a large PUT:
//! 35 % of a `hangar dev` server's CPU during 1 MiB PUTs, more than MD5 (docs/benchmarks.md,
//! "Block files without the page cache"). With `O_DIRECT` the disk reads our buffer itself.
//!
//! `O_DIRECT` wants the buffer's address, the length and the file offset aligned to the
//! device's logical block size; `ALIGN` (4096) covers every size in common use. The payload
//! is copied once into an aligned buffer, zero-padded to a multiple of `ALIGN`, written, and
//! the file is then cut back to its real length before the fsync, so the file on disk is
//! byte for byte what a buffered write would have left.
//!
//! A file system that cannot do it (tmpfs on older kernels, some FUSE and network file
//! systems) refuses with `EINVAL`, at the open or at the first write; the caller then
//! writes the file the ordinary way and stops trying (`Outcome::Refused`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Alignment of the buffer, the length written and the offset.
pub const ALIGN: usize = 4096;

/// What `write_direct` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file holds the parts and is fsynced.
    Written,
    /// The file system refuses `O_DIRECT`; `path` may exist with partial contents, and
    /// must be rewritten (truncated) by the caller.
    Refused,
}

/// Creates (or truncates) `path` with the concatenation of `parts`, written with
/// `O_DIRECT`, and fsyncs it.
pub fn write_direct(path: &Path, parts: &[&[u8]]) -> io::Result<Outcome> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let padded = len.next_multiple_of(ALIGN);
    // One allocation, one alignment's worth larger, so that an aligned window fits in it.
    let mut storage = vec![0u8; padded + ALIGN];
    let start = storage.as_ptr().align_offset(ALIGN);
    let buffer = &mut storage[start..start + padded];
    let mut at = 0;
    for part in parts {
        buffer[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let mut file = match open_direct(path) {
        Err(e) if refuses_direct(&e) => return Ok(Outcome::Refused),
        other => other?,
    };
    // One write of the whole buffer: after a short one (a full disk), the rest would start
    // at an unaligned offset, and the `EINVAL` that follows must not read as a refusal.
    let written = loop {
        match file.write(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if refuses_direct(&e) => return Ok(Outcome::Refused),
            other => break other?,
        }
    };
    if written != padded {
        let problem = format!("short O_DIRECT write: {written} of {padded} bytes");
        return Err(io::Error::new(io::ErrorKind::StorageFull, problem));
    }
    if padded != len {
        file.set_len(len as u64)?;
    }
    file.sync_all()?;
    Ok(Outcome::Written)
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
    OpenOptions::new().write(true).create(true).truncate(true).custom_flags(direct).open(path)
}

/// Elsewhere there is no `O_DIRECT` flag to ask for (macOS has `F_NOCACHE`, not used):
/// every write goes through the page cache.
#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error()))
}

/// `EINVAL` is how Linux says "this file system or this alignment cannot do `O_DIRECT`".
fn refuses_direct(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("hangar-direct-{}-{name}", std::process::id()))
    }

    /// Whether the temporary directory's file system is one known to take `O_DIRECT`
    /// (ext4, XFS, btrfs): there a refusal is a failure, not a fallback.
    fn must_take_direct() -> bool {
        const KNOWN: [i64; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];
        let kind = rustix::fs::statfs(std::env::temp_dir()).unwrap().f_type as i64;
        cfg!(target_os = "linux") && KNOWN.contains(&kind)
    }

    fn check_outcome(outcome: Outcome) -> bool {
        if must_take_direct() {
            assert_eq!(outcome, Outcome::Written, "this file system takes O_DIRECT");
        }
        outcome == Outcome::Written
    }

    #[test]
    fn the_file_holds_exactly_the_parts_at_any_length() {
        // Lengths around the alignment: the padding must never reach the file.
        for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * ALIGN + 17, 1 << 20] {
            let path = temp_path(&format!("len{len}"));
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            if check_outcome(write_direct(&path, &[&[1], &payload]).unwrap()) {
                let file = std::fs::read(&path).unwrap();
                assert_eq!(file.len(), len + 1, "length {len}");
                assert_eq!(file[0], 1);
                assert!(file[1..] == payload[..], "contents at length {len}");
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn an_existing_longer_file_is_replaced_not_overlaid() {
        let path = temp_path("replace");
        std::fs::write(&path, vec![9u8; 3 * ALIGN]).unwrap();
        if check_outcome(write_direct(&path, &[b"short"]).unwrap()) {
            assert_eq!(std::fs::read(&path).unwrap(), b"short");
        }
        let _ = std::fs::remove_file(&path);
    }
}
