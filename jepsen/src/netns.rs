//! The test network: one bridge in the root namespace, one network namespace per node
//! joined to it by a veth pair, and nftables rules inside each node's namespace for
//! partitions. Everything is named with the `hjep-` prefix so a later run can find and
//! remove what a crashed run left behind (`cleanup`), and so nothing else is touched.
//!
//! Addresses: the bridge is 10.77.0.1/24 (the client side: workloads run in the root
//! namespace), node `i` (1-based) is 10.77.0.(10 + i). Partitions drop node-to-node traffic
//! only; the client keeps reaching every node, as Jepsen's clients do.

use std::net::Ipv4Addr;
use std::process::Command;

pub const PREFIX: &str = "hjep-";
pub const BRIDGE: &str = "hjep-br0";
const BRIDGE_CIDR: &str = "10.77.0.1/24";
/// The nftables table (one per node namespace) that holds partition rules.
const NFT_TABLE: &str = "hjep";

pub fn node_ip(node: usize) -> Ipv4Addr {
    assert!((1..=200).contains(&node), "node numbers are 1-based and small");
    Ipv4Addr::new(10, 77, 0, 10 + node as u8)
}

pub fn netns_name(node: usize) -> String {
    format!("{PREFIX}n{node}")
}

/// Runs a command; a non-zero exit is an error naming the command and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e} (is it installed? see docs/jepsen.md)"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Namespaces whose name starts with the prefix (left over or ours).
pub fn our_namespaces() -> Result<Vec<String>, String> {
    let list = run("ip", &["netns", "list"])?;
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Kills every process inside our namespaces, deletes the namespaces (their veths and nft
/// tables go with them) and the bridge. Idempotent: safe with nothing to clean.
pub fn cleanup() -> Result<(), String> {
    for ns in our_namespaces()? {
        let pids = run("ip", &["netns", "pids", &ns]).unwrap_or_default();
        for pid in pids.split_whitespace() {
            // SIGCONT first is not needed: SIGKILL ends stopped processes too.
            let _ = run("kill", &["-KILL", pid]);
        }
        wait_no_pids(&ns);
        run("ip", &["netns", "del", &ns])?;
    }
    // A deleted namespace lives on while sockets of its dead processes linger (TIME_WAIT),
    // and so does its veth pair: delete our root-side links by name (the peer goes too).
    // A link may vanish on its own meanwhile (its namespace finally went): only what is
    // still there after the pass counts as a failure.
    for link in our_links()? {
        let _ = run("ip", &["link", "del", &link]);
    }
    match our_links()? {
        left if left.is_empty() => Ok(()),
        left => Err(format!("cannot delete links {}", left.join(", "))),
    }
}

/// Links in the root namespace whose name starts with the prefix (bridge and veth ends).
fn our_links() -> Result<Vec<String>, String> {
    let list = run("ip", &["-o", "link", "show"])?;
    Ok(list.lines().filter_map(link_name).filter(|n| n.starts_with(PREFIX)).collect())
}

/// `12: hjep-v1@if2: <BROADCAST…` → `hjep-v1`.
fn link_name(line: &str) -> Option<String> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next()?.to_string())
}

fn wait_no_pids(ns: &str) {
    for _ in 0..50 {
        if run("ip", &["netns", "pids", ns]).is_ok_and(|p| p.trim().is_empty()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What `cleanup` would still find: used to prove a run left nothing behind.
pub fn leftovers() -> Result<Vec<String>, String> {
    let mut left = our_namespaces()?;
    left.extend(our_links()?);
    Ok(left)
}

/// Creates the bridge and one namespace per node, with loopback and the node's address up.
pub fn create(nodes: usize) -> Result<(), String> {
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["addr", "add", BRIDGE_CIDR, "dev", BRIDGE])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    for node in 1..=nodes {
        let ns = netns_name(node);
        let host_end = format!("{PREFIX}v{node}");
        let ip = format!("{}/24", node_ip(node));
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns],
        )?;
        run("ip", &["link", "set", &host_end, "master", BRIDGE])?;
        run("ip", &["link", "set", &host_end, "up"])?;
        in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
        in_ns(&ns, &["ip", "addr", "add", &ip, "dev", "eth0"])?;
        in_ns(&ns, &["ip", "link", "set", "eth0", "up"])?;
        in_ns(&ns, &["nft", "add", "table", "inet", NFT_TABLE])?;
        let chain = "{ type filter hook input priority 0 ; policy accept ; }";
        in_ns(&ns, &["nft", "add", "chain", "inet", NFT_TABLE, "input", chain])?;
    }
    Ok(())
}

fn in_ns(ns: &str, cmd: &[&str]) -> Result<String, String> {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(cmd);
    run("ip", &args)
}

/// Makes `node` drop every packet coming from the nodes in `from` (one direction; call it
/// on both sides for a full cut).
pub fn drop_from(node: usize, from: &[usize]) -> Result<(), String> {
    let ns = netns_name(node);
    for peer in from {
        let src = node_ip(*peer).to_string();
        in_ns(
            &ns,
            &["nft", "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", &src, "drop"],
        )?;
    }
    Ok(())
}

/// Removes every partition rule of `node`.
pub fn heal(node: usize) -> Result<(), String> {
    in_ns(&netns_name(node), &["nft", "flush", "chain", "inet", NFT_TABLE, "input"]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_prefixed_and_distinct() {
        assert_eq!(netns_name(3), "hjep-n3");
        assert_eq!(node_ip(1).to_string(), "10.77.0.11");
        assert_ne!(node_ip(1), node_ip(2));
        assert!(BRIDGE.starts_with(PREFIX));
        let line = "12: hjep-v1@if2: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue";
        assert_eq!(link_name(line).as_deref(), Some("hjep-v1"));
        assert_eq!(link_name("1: lo: <LOOPBACK,UP>").as_deref(), Some("lo"));
    }
}
