//! Free and total space of the node's data and metadata file systems, for `/metrics`
//! (`hangar_disk_free_bytes`, `hangar_disk_total_bytes`): the number an operator watches
//! before a disk fills up and writes start failing.

use std::path::{Path, PathBuf};

use crate::metrics::TextWriter;

/// Space on the file system holding `path`: (free for unprivileged users, total) in bytes.
pub fn space_bytes(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_blocks.saturating_mul(st.f_frsize)))
}

/// Renders the gauges for each `(role, directory)`; a directory that cannot be read is
/// left out (and logged), so one bad mount does not hide the other metrics.
pub fn render(out: &mut TextWriter, dirs: &[(&'static str, PathBuf)]) {
    let spaces: Vec<(&str, String, u64, u64)> = dirs
        .iter()
        .filter_map(|(role, dir)| match space_bytes(dir) {
            Ok((free, total)) => Some((*role, dir.display().to_string(), free, total)),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read free disk space");
                None
            }
        })
        .collect();
    let families = [
        ("hangar_disk_free_bytes", "Bytes available on the file system of a node directory"),
        ("hangar_disk_total_bytes", "Size of the file system of a node directory"),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        out.family(name, "gauge", help);
        for (role, path, free, total) in &spaces {
            let value = if i == 0 { *free } else { *total };
            out.sample(name, &[("dir", role), ("path", path)], value as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_dir_has_a_size_and_free_space_below_it() {
        let (free, total) = space_bytes(&std::env::temp_dir()).unwrap();
        assert!(total > 0 && free <= total, "free {free} total {total}");
        assert!(space_bytes(Path::new("/no/such/dir/for/hangar")).is_err());
        let mut w = TextWriter::default();
        render(&mut w, &[("data", std::env::temp_dir()), ("meta", "/no/such/dir".into())]);
        let text = w.finish();
        assert!(text.contains("hangar_disk_free_bytes{dir=\"data\""), "{text}");
        assert!(!text.contains("dir=\"meta\""), "an unreadable directory is left out");
    }
}
