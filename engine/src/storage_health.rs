//! Whether the metadata database can still commit, and what the node does when it cannot.
//!
//! redb latches the first write or sync that fails (a full disk, a failing one): from then
//! on every write transaction of that `Database` fails with `PreviousIo` — even once the
//! disk has room again — while reads still work, until the database is closed and reopened.
//! A node in that state looks alive: it answers reads, digests and RPCs, but can store
//! nothing, so anti-entropy never repairs it and it keeps old values forever (the simulator
//! found this: a node whose disk filled up and was then freed kept a value that a delete
//! acknowledged meanwhile had removed everywhere else).
//!
//! Reopening the database under the running node is not safe: the acceptor reads its
//! promise ceiling at open (`cas::acceptor`, "restart floor") and tables keep state next to
//! their transactions. So the node stops instead, and is started again the way a crash is
//! recovered from: `Node::storage_failure` resolves, the server exits with
//! `EXIT_STORAGE_FAILED`, and the service manager (docs/deploy.md: `Restart=on-failure`)
//! starts it again; a fresh start reopens the database, and every path it takes is the
//! crash recovery every test already exercises.

use std::time::Duration;

use redb::{Database, StorageError, TransactionError};
use tokio::sync::watch;

/// How often the watcher checks that the metadata database can still commit.
pub const CHECK_INTERVAL_MS: u64 = 1_000;

/// The process exit status of a node stopped by a storage failure (EX_TEMPFAIL: start it
/// again once the disk has room or is replaced).
pub const EXIT_STORAGE_FAILED: i32 = 75;

/// Whether `db` has latched a failed write: its write transactions all fail until reopened.
/// Beginning a write transaction and dropping it unused commits nothing and syncs nothing.
pub fn write_latched(db: &Database) -> bool {
    matches!(db.begin_write(), Err(TransactionError::Storage(StorageError::PreviousIo)))
}

/// Checks `db` every `CHECK_INTERVAL_MS` and, once it has latched a failed write, says so
/// on `failed` and stops.
pub async fn watch_metadata_db(
    db: std::sync::Arc<Database>,
    failed: watch::Sender<Option<String>>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(CHECK_INTERVAL_MS)).await;
        if write_latched(&db) {
            let reason = "the metadata database failed a write (disk full or failing) and \
                          refuses every write since, until it is reopened"
                .to_string();
            tracing::error!(%reason, "stopping the node so that it is started again");
            let _ = failed.send(Some(reason));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, RwLock};

    use redb::{Builder, Durability, ReadableDatabase, StorageBackend, TableDefinition};

    use super::*;

    /// A file that refuses every write and sync with ENOSPC while `full` is set.
    #[derive(Debug, Clone, Default)]
    struct FillableFile {
        data: Arc<RwLock<Vec<u8>>>,
        full: Arc<AtomicBool>,
    }

    impl FillableFile {
        fn check(&self) -> io::Result<()> {
            match self.full.load(Ordering::SeqCst) {
                true => Err(io::Error::from_raw_os_error(28)),
                false => Ok(()),
            }
        }
    }

    impl StorageBackend for FillableFile {
        fn len(&self) -> io::Result<u64> {
            Ok(self.data.read().unwrap().len() as u64)
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            let data = self.data.read().unwrap();
            out.copy_from_slice(&data[offset as usize..offset as usize + out.len()]);
            Ok(())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.check()?;
            self.data.write().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            self.check()
        }
        fn write(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            self.check()?;
            let mut data = self.data.write().unwrap();
            let end = offset as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(bytes);
            Ok(())
        }
    }

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(db: &Database, key: u64) -> Result<(), String> {
        let mut txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(Durability::Immediate).map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
            table.insert(key, key).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    #[test]
    fn a_write_failed_on_a_full_disk_latches_until_the_database_is_reopened() {
        let file = FillableFile::default();
        let db = Builder::new().create_with_backend(file.clone()).unwrap();
        put(&db, 1).unwrap();
        assert!(!write_latched(&db), "a healthy database");
        assert!(!write_latched(&db), "checking twice commits nothing and latches nothing");

        file.full.store(true, Ordering::SeqCst);
        assert!(put(&db, 2).is_err(), "the disk is full");
        file.full.store(false, Ordering::SeqCst);
        assert!(write_latched(&db), "room again, but the database refuses writes");
        assert!(put(&db, 3).is_err());
        assert!(db.begin_read().is_ok(), "while reads still work: the node looks alive");

        drop(db);
        let db = Builder::new().create_with_backend(file).unwrap();
        assert!(!write_latched(&db), "a reopened database writes again");
        put(&db, 4).unwrap();
    }
}
