//! FsDisk on a real temporary directory: the seam's contract (atomic replace, sorted
//! listing, idempotent remove, durable rename) and a redb database that must keep its data
//! across a close and reopen — the metadata store of every production node sits on this.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use hangar_engine::seam::{Disk, open_database};
use redb::{ReadableDatabase, TableDefinition};

use super::FsDisk;

/// A directory removed when the test ends (pass or fail).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("hangar-fsdisk-{}-{seq}", std::process::id());
        TempDir(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn write_read_replace_creates_directories() {
    let tmp = TempDir::new();
    // The root itself does not exist yet: the first write must create it.
    let disk = FsDisk::new(tmp.0.join("root"));
    disk.write_durable("blocks/ab/cd", b"first").unwrap();
    assert_eq!(disk.read("blocks/ab/cd").unwrap(), b"first");
    disk.write_durable("blocks/ab/cd", b"second").unwrap();
    assert_eq!(disk.read("blocks/ab/cd").unwrap(), b"second");
    assert!(disk.exists("blocks/ab/cd").unwrap());
    assert!(!disk.exists("blocks/ab/ef").unwrap());
    let err = disk.read("blocks/ab/ef").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn list_is_sorted_and_hides_temporaries() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    for name in ["c", "a", "b"] {
        disk.write_durable(&format!("dir/{name}"), name.as_bytes()).unwrap();
    }
    // A leftover of a write interrupted by a crash.
    std::fs::write(tmp.0.join("dir/d.hangar-tmp-1-0"), b"partial").unwrap();
    assert_eq!(disk.list("dir").unwrap(), ["a", "b", "c"]);
    assert_eq!(disk.list("").unwrap(), ["dir"]);
    assert!(disk.list("absent").unwrap().is_empty());
}

#[test]
fn remove_is_idempotent() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    disk.write_durable("x", b"1").unwrap();
    disk.remove("x").unwrap();
    disk.remove("x").unwrap();
    assert!(!disk.exists("x").unwrap());
}

#[test]
fn rename_moves_within_and_across_directories() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    disk.write_durable("a/one", b"1").unwrap();
    disk.rename_durable("a/one", "a/two").unwrap();
    assert!(!disk.exists("a/one").unwrap());
    disk.write_durable("b/keep", b"").unwrap();
    disk.rename_durable("a/two", "b/three").unwrap();
    assert_eq!(disk.read("b/three").unwrap(), b"1");
    assert!(disk.list("a").unwrap().is_empty());
}

#[test]
fn paths_cannot_leave_the_root() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/"] {
        let err = disk.write_durable(bad, b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
}

const TABLE: TableDefinition<&str, u64> = TableDefinition::new("t");

#[test]
fn redb_database_keeps_its_data_across_reopen() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    {
        let db = open_database(&disk, "meta/test.redb").unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TABLE).unwrap().insert("answer", 42).unwrap();
        tx.commit().unwrap();
    }
    // The creation dance must leave no temporary behind.
    assert_eq!(disk.list("meta").unwrap(), ["test.redb"]);
    let db = open_database(&disk, "meta/test.redb").unwrap();
    let tx = db.begin_read().unwrap();
    let value = tx.open_table(TABLE).unwrap().get("answer").unwrap().map(|v| v.value());
    assert_eq!(value, Some(42));
}

#[test]
fn redb_database_is_locked_against_a_second_opener() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(&tmp.0);
    let _db = open_database(&disk, "meta/test.redb").unwrap();
    // Two processes on one metadata store would corrupt it; the file lock must refuse.
    assert!(open_database(&disk, "meta/test.redb").is_err());
}

#[test]
fn block_files_live_under_the_data_root_and_the_rest_under_the_metadata_root() {
    let tmp = TempDir::new();
    let (meta, data) = (tmp.0.join("meta"), tmp.0.join("data"));
    let disk = FsDisk::with_data_root(&meta, &data);
    disk.write_durable("blocks/ab/cd/abcd", b"block").unwrap();
    disk.write_durable("node_id", b"id").unwrap();
    // A name that merely starts like the blocks directory is metadata.
    disk.write_durable("blocks.txt", b"not a block").unwrap();
    assert!(data.join("blocks/ab/cd/abcd").is_file());
    assert!(!meta.join("blocks").exists(), "no block file may land on the metadata disk");
    assert!(meta.join("node_id").is_file() && meta.join("blocks.txt").is_file());
    assert!(!data.join("node_id").exists());
    assert_eq!(disk.list("blocks/ab/cd").unwrap(), ["abcd"]);
    assert_eq!(disk.read("blocks/ab/cd/abcd").unwrap(), b"block");
    assert_eq!(disk.list("").unwrap(), ["blocks.txt", "node_id"]);
}

/// `metadata_fsync = false` / `data_fsync = false` skip fsync only: the files, the database
/// and its lock against a second opener work as before.
#[test]
fn with_fsync_off_files_and_the_database_still_work() {
    let tmp = TempDir::new();
    let off = super::FsyncPolicy { metadata: false, data: false };
    let disk = FsDisk::with_data_root(tmp.0.join("meta"), tmp.0.join("data")).with_fsync(off);
    disk.write_durable("blocks/ab/cd/abcd", b"block").unwrap();
    assert_eq!(disk.read("blocks/ab/cd/abcd").unwrap(), b"block");
    assert!(tmp.0.join("data/blocks/ab/cd/abcd").is_file());
    {
        let db = open_database(&disk, "hangar.redb").unwrap();
        assert!(open_database(&disk, "hangar.redb").is_err(), "still locked");
        let tx = db.begin_write().unwrap();
        tx.open_table(TABLE).unwrap().insert("answer", 42).unwrap();
        tx.commit().unwrap();
    }
    let db = open_database(&disk, "hangar.redb").unwrap();
    let tx = db.begin_read().unwrap();
    let value = tx.open_table(TABLE).unwrap().get("answer").unwrap().map(|v| v.value());
    assert_eq!(value, Some(42));
}

#[test]
fn large_block_files_read_back_exactly_with_and_without_direct_io() {
    let tmp = TempDir::new();
    // A block file is a format byte, then the payload; sizes around the O_DIRECT threshold
    // and its alignment, so that padding or a lost tail would show.
    for (i, len) in
        [64 * 1024 - 2, 64 * 1024 - 1, 64 * 1024 + 4095, (1 << 20) + 1].iter().enumerate()
    {
        let payload: Vec<u8> = (0..*len).map(|b| (b % 251) as u8).collect();
        for direct in [true, false] {
            let root = tmp.0.join(format!("{i}-{direct}"));
            let disk =
                if direct { FsDisk::new(&root) } else { FsDisk::new(&root).without_direct_io() };
            let path = format!("blocks/ab/cd/f{i}");
            disk.write_durable("blocks/ab/cd/0", &[7u8; 100_000]).unwrap();
            disk.write_durable_parts("blocks/ab/cd/0", &[&[1], &payload]).unwrap();
            disk.write_durable_parts(&path, &[&[1], &payload]).unwrap();
            for name in ["blocks/ab/cd/0", path.as_str()] {
                let file = disk.read(name).unwrap();
                assert_eq!(file.len(), len + 1, "{name}, direct {direct}");
                assert!(file[0] == 1 && file[1..] == payload[..], "{name}, direct {direct}");
            }
            assert_eq!(disk.list("blocks/ab/cd").unwrap().len(), 2, "no temporary left behind");
        }
    }
}

#[test]
fn a_file_system_refusing_direct_io_gets_whole_ordinary_writes_from_then_on() {
    let tmp = TempDir::new();
    let disk = FsDisk::new(tmp.0.join("root")).refusing_direct_io();
    assert!(disk.uses_direct_io());
    let payload: Vec<u8> = (0..200_000u32).map(|b| (b % 253) as u8).collect();
    disk.write_durable_parts("blocks/ab/cd/x", &[&[1], &payload]).unwrap();
    assert!(!disk.uses_direct_io(), "the refusal is remembered");
    let file = disk.read("blocks/ab/cd/x").unwrap();
    assert!(file.len() == payload.len() + 1 && file[0] == 1 && file[1..] == payload[..]);
    // Smaller than before: the ordinary write must not leave the old tail behind.
    disk.write_durable_parts("blocks/ab/cd/x", &[&[1], &payload[..70_000]]).unwrap();
    assert_eq!(disk.read("blocks/ab/cd/x").unwrap().len(), 70_001);
    assert_eq!(disk.list("blocks/ab/cd").unwrap(), ["x"], "no temporary left behind");
}
