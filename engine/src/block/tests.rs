//! Blocks over three in-memory nodes (`node_tests::TestCluster`: RF 3, so every node is a
//! replica of every block; write quorum 2 of 3): replication, deduplication, quorum
//! failures, corruption detected and routed around, a missing copy fetched from a peer, and
//! the byte layout on disk. Time is paused tokio time.

use super::*;
use crate::codec;
use crate::node_tests::{NODE_COUNT, TestCluster};

/// A deterministic block body of `len` bytes that differs with `seed`.
fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn block(seed: u8) -> (BlockHash, Vec<u8>) {
    let data = body(seed, 100_000 + seed as usize);
    (hash_of(&data), data)
}

#[tokio::test(start_paused = true)]
async fn a_block_put_through_one_node_is_read_through_every_node() {
    let c = TestCluster::start().await;
    for writer in 1..=NODE_COUNT {
        let (hash, data) = block(writer as u8);
        c.node(writer).blocks.put_block(hash, data.clone()).await.unwrap();
        for reader in 1..=NODE_COUNT {
            let got = c.node(reader).blocks.get_block(&hash).await;
            assert_eq!(got.as_ref(), Ok(&data), "n{reader} reads the block written via n{writer}");
        }
    }
    for n in 1..=NODE_COUNT {
        assert_eq!(c.node(n).blocks.stats(), BlockStats::default(), "no faults on n{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_block_put_twice_is_stored_once_per_node() {
    let c = TestCluster::start().await;
    let (hash, data) = block(7);
    c.node(1).blocks.put_block(hash, data.clone()).await.unwrap();
    c.node(2).blocks.put_block(hash, data.clone()).await.unwrap();
    // The third replica's copy may still be on its way (the put returned at quorum).
    crate::node_tests::wait_until("every node holds the block", 5_000, || {
        c.nodes.iter().all(|n| n.blocks.local_has(&hash).unwrap())
    })
    .await;
    for n in 1..=NODE_COUNT {
        assert_eq!(c.node(n).blocks.local_list().unwrap(), [hash], "n{n} lists one block");
        assert_eq!(c.node(n).blocks.local_get(&hash).unwrap(), Some(data.clone()));
    }
}

#[tokio::test(start_paused = true)]
async fn a_put_succeeds_with_one_node_down_and_fails_with_two() {
    let c = TestCluster::start().await;
    c.set_down(3, true);
    let (hash, data) = block(1);
    c.node(1).blocks.put_block(hash, data.clone()).await.unwrap();
    assert!(c.node(2).blocks.local_has(&hash).unwrap(), "n2 made up the quorum");
    assert!(!c.node(3).blocks.local_has(&hash).unwrap(), "n3 was down");

    c.set_down(2, true);
    let (hash2, data2) = block(2);
    match c.node(1).blocks.put_block(hash2, data2).await {
        Err(BlockError::Quorum { quorum: 2, successes: 1, errors }) => {
            assert_eq!(errors.len(), 2, "one error per unreachable replica: {errors:?}");
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    // n1's own copy was written (a failed put may leave copies; GC reclaims them).
    assert!(c.node(1).blocks.local_has(&hash2).unwrap());
    // Reads of the first block are served locally, peers down or not.
    assert_eq!(c.node(1).blocks.get_block(&hash).await, Ok(data));
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_local_copy_is_detected_and_the_read_falls_back_to_a_peer() {
    let c = TestCluster::start().await;
    let (hash, data) = block(3);
    c.node(1).blocks.put_block(hash, data.clone()).await.unwrap();
    let n2 = c.node(2);
    let mut rotten = data.clone();
    rotten[1234] ^= 0x40;
    let path = block_path(&hash);
    let mut file = vec![BLOCK_FORMAT_V1];
    file.extend_from_slice(&rotten);
    n2.seam.disk.write_durable(&path, &file).unwrap();

    let expected = BlockError::Corrupt { hash_hex: hash_hex(&hash), node: n2.id };
    assert_eq!(n2.blocks.local_get(&hash), Err(expected));
    assert_eq!(n2.blocks.stats().corrupt_copies, 1);

    assert_eq!(n2.blocks.get_block(&hash).await, Ok(data.clone()), "served by a peer");
    assert_eq!(n2.blocks.stats().corrupt_copies, 2, "the read met the corrupt copy again");
    // Another node reading it never sees the corrupt copy (its own is first and good).
    assert_eq!(c.node(3).blocks.get_block(&hash).await, Ok(data.clone()));

    // Garbage in place of the file (not even the format byte) is corrupt too.
    n2.seam.disk.write_durable(&path, b"").unwrap();
    assert!(matches!(n2.blocks.local_get(&hash), Err(BlockError::Corrupt { .. })));
    // A put over a corrupt copy rewrites it.
    n2.blocks.local_put(&hash, &data).unwrap();
    assert_eq!(n2.blocks.local_get(&hash), Ok(Some(data)));
}

#[tokio::test(start_paused = true)]
async fn when_every_copy_is_corrupt_or_missing_the_read_fails_naming_each_replica() {
    let c = TestCluster::start().await;
    let (hash, data) = block(4);
    c.node(1).blocks.put_block(hash, data).await.unwrap();
    crate::node_tests::wait_until("every node holds the block", 5_000, || {
        c.nodes.iter().all(|n| n.blocks.local_has(&hash).unwrap())
    })
    .await;
    c.node(1).seam.disk.write_durable(&block_path(&hash), b"\x01rot").unwrap();
    c.node(2).blocks.local_delete(&hash).unwrap();
    c.set_down(3, true);
    match c.node(1).blocks.get_block(&hash).await {
        Err(BlockError::NotFound { hash_hex: h, tried }) => {
            assert_eq!(h, hash_hex(&hash));
            assert_eq!(tried.len(), 3, "{tried:?}");
            let id = |n: u64| format!("{}: ", c.node(n).id);
            assert!(tried[0].starts_with(&id(1)) && tried[0].contains("corrupt"), "{tried:?}");
            assert!(tried[1].starts_with(&id(2)) && tried[1].contains("no copy"), "{tried:?}");
            assert!(tried[2].starts_with(&id(3)), "{tried:?}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(c.node(1).blocks.stats(), BlockStats { corrupt_copies: 1, missing_copies: 1 });
}

#[tokio::test(start_paused = true)]
async fn a_block_missing_on_the_local_node_is_fetched_from_a_peer() {
    let c = TestCluster::start().await;
    c.set_down(3, true);
    let (hash, data) = block(5);
    c.node(1).blocks.put_block(hash, data.clone()).await.unwrap();
    c.set_down(3, false);
    assert_eq!(c.node(3).blocks.local_get(&hash), Ok(None));
    // n3's client to its peers may still be backing off from the outage: retry a while.
    let mut got = c.node(3).blocks.get_block(&hash).await;
    for _ in 0..20 {
        if got.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        got = c.node(3).blocks.get_block(&hash).await;
    }
    assert_eq!(got, Ok(data));
    assert!(c.node(3).blocks.stats().missing_copies >= 1, "n3's own miss is counted");
    assert!(!c.node(3).blocks.local_has(&hash).unwrap(), "reads do not repair (yet)");
}

#[tokio::test(start_paused = true)]
async fn local_put_refuses_data_that_does_not_hash_to_the_block_name() {
    let c = TestCluster::start().await;
    let blocks = &c.node(1).blocks;
    let (hash, _) = block(6);
    let other = body(9, 10);
    let refused = blocks.local_put(&hash, &other);
    let expected_hex = hash_hex(&hash);
    let actual_hex = hash_hex(&hash_of(&other));
    assert_eq!(refused, Err(BlockError::HashMismatch { expected_hex, actual_hex }));
    assert!(!blocks.local_has(&hash).unwrap());
    assert!(blocks.local_list().unwrap().is_empty());
    // A peer refuses it over RPC as well.
    let request = Request::Block(BlockRequest::Put { hash, data: other });
    let answer = c.node(1).rpc.call(c.node(2).id, request).await;
    assert!(matches!(answer, Err(crate::rpc::RpcError::Remote { .. })), "peer answered {answer:?}");
}

#[cfg(debug_assertions)]
#[tokio::test(start_paused = true)]
#[should_panic(expected = "does not hash to")]
async fn put_block_with_a_wrong_hash_is_a_caller_bug() {
    let c = TestCluster::start().await;
    let (hash, _) = block(1);
    let _ = c.node(1).blocks.put_block(hash, body(2, 10)).await;
}

/// Release builds do not re-hash the caller's block (`put_block`), so a caller bug there is
/// caught by the other replicas, which verify what they receive: the write fails.
#[cfg(not(debug_assertions))]
#[tokio::test(start_paused = true)]
async fn put_block_with_a_wrong_hash_is_refused_by_the_other_replicas() {
    let c = TestCluster::start().await;
    let (hash, _) = block(1);
    match c.node(1).blocks.put_block(hash, body(2, 10)).await {
        Err(BlockError::Quorum { quorum: 2, successes: 1, errors }) => {
            assert_eq!(errors.len(), 2, "both peers refuse: {errors:?}");
            assert!(errors.iter().all(|e| e.contains("hash")), "{errors:?}");
        }
        other => panic!("expected the peers to refuse the block, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn local_list_is_sorted_and_delete_removes() {
    let c = TestCluster::start().await;
    let blocks = &c.node(1).blocks;
    let mut hashes: Vec<BlockHash> = (0..20).map(|i| hash_of(&body(i, 50))).collect();
    for (i, hash) in hashes.iter().enumerate() {
        blocks.local_put(hash, &body(i as u8, 50)).unwrap();
    }
    // Strays are not blocks: a temporary of an interrupted write, a misplaced file.
    let stray = format!("{}.tmp", block_path(&hashes[0]));
    c.node(1).seam.disk.write_durable(&stray, b"partial").unwrap();
    let misplaced = format!("{BLOCKS_DIR}/00/00/{}", hash_hex(&hashes[1]));
    c.node(1).seam.disk.write_durable(&misplaced, b"x").unwrap();
    hashes.sort();
    assert_eq!(blocks.local_list().unwrap(), hashes);
    blocks.local_delete(&hashes[3]).unwrap();
    blocks.local_delete(&hashes[3]).unwrap();
    assert!(!blocks.local_has(&hashes[3]).unwrap());
    hashes.remove(3);
    assert_eq!(blocks.local_list().unwrap(), hashes);
}

#[test]
fn the_on_disk_path_is_two_levels_of_hash_prefix_then_the_full_hex_hash() {
    let mut hash = [0u8; 32];
    hash[0] = 0xab;
    hash[1] = 0x0c;
    hash[31] = 0xff;
    let hex = format!("ab0c{}ff", "00".repeat(29));
    assert_eq!(block_path(&hash), format!("blocks/ab/0c/{hex}"));
    assert_eq!(hash_hex(&hash), hex);
    assert_eq!(parse_hash_hex(&hex), Some(hash));
}

#[test]
fn block_messages_round_trip_and_stay_compact() {
    let data = body(1, 4096);
    let hash = hash_of(&data);
    let put = Request::Block(BlockRequest::Put { hash, data: data.clone() });
    let encoded = codec::encode(&put);
    // Variant tags + 32-byte hash + varint length (3 bytes for 4096) + the payload.
    assert!(encoded.len() <= data.len() + 32 + 8, "{} bytes", encoded.len());
    match codec::decode::<Request>("block put", &encoded).unwrap() {
        Request::Block(BlockRequest::Put { hash: h, data: d }) => assert_eq!((h, d), (hash, data)),
        other => panic!("decoded {other:?}"),
    }
    for answer in [Response::Block(None), Response::Block(Some(body(2, 300)))] {
        let decoded: Response = codec::decode("block answer", &codec::encode(&answer)).unwrap();
        assert_eq!(decoded, answer);
    }
}
