//! Convergence after heal: once faults stop and the cluster has quiesced, every replica of
//! a partition must hold exactly the same entries (equal digests).

use std::collections::BTreeMap;

use super::Violation;

/// `digests[partition][replica]` is the replica's digest of that partition.
pub fn check_convergence(
    digests: &BTreeMap<u8, BTreeMap<String, [u8; 32]>>,
) -> Result<(), Violation> {
    for (partition, replicas) in digests {
        let mut distinct: Vec<&[u8; 32]> = replicas.values().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 {
            let list: Vec<String> =
                replicas.iter().map(|(r, d)| format!("{r}={}", &hex::encode(d)[..12])).collect();
            return Err(Violation {
                checker: "convergence",
                details: format!(
                    "partition {partition} differs between replicas: {}",
                    list.join(" ")
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(rows: &[(u8, &str, u8)]) -> BTreeMap<u8, BTreeMap<String, [u8; 32]>> {
        let mut m: BTreeMap<u8, BTreeMap<String, [u8; 32]>> = BTreeMap::new();
        for &(p, r, d) in rows {
            m.entry(p).or_default().insert(r.into(), [d; 32]);
        }
        m
    }

    #[test]
    fn equal_replicas_pass() {
        assert!(
            check_convergence(&digests(&[(0, "n1", 1), (0, "n2", 1), (7, "n1", 2), (7, "n3", 2)]))
                .is_ok()
        );
    }

    #[test]
    fn one_differing_replica_is_named() {
        let err =
            check_convergence(&digests(&[(0, "n1", 1), (5, "n1", 1), (5, "n2", 9)])).unwrap_err();
        assert!(err.details.starts_with("partition 5 differs"), "{err}");
        assert!(err.details.contains("n2="), "{err}");
    }
}
