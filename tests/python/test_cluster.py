"""Three `hangar server` processes operated with the CLI only, on one machine.

test_deploy_guide_literally runs docs/deploy.md's shell blocks in order (see "How the test
follows this page" there for the only substitutions) and ends with an aws CLI PUT through
node 1 and a GET through node 3, comparing the bytes. The next test reuses that cluster:
a dead node is replaced, the transition completes, and every object stays readable with the
new node standing in for a stopped one; the CLI explains a node that is down. The last one
runs `hangar dev --nodes 3` (skipped if its fixed ports are busy).

Run by tests/run-cluster-tests.sh (HANGAR_CLUSTER_TESTS=1, HANGAR_BIN); skipped otherwise,
so the single-node suite in this directory does not start a cluster.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

if not os.environ.get("HANGAR_CLUSTER_TESTS"):
    pytest.skip("cluster tests run from tests/run-cluster-tests.sh", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ["HANGAR_BIN"]
DOC = ROOT / "docs" / "deploy.md"
NODES = (1, 2, 3)
WAIT_S = 90


def free_port_base():
    """Four consecutive free ports (S3, RPC, -, admin) on loopback, below the kernel's
    ephemeral range: a node's ports are picked when it is described and bound when it
    starts, and a port from that range can be taken in between by an outgoing connection
    (the other nodes' RPC clients), which made a replacement node fail with "Address
    already in use"."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, ephemeral_low - 4)
        ok = True
        for p in range(base, base + 4):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no four consecutive free ports")


def doc_steps():
    """(target, body) of every shell block whose first line names where it runs."""
    text = DOC.read_text()
    steps = []
    for m in re.finditer(r"```sh\n(.*?)```", text, re.S):
        body = m.group(1)
        first, _, rest = body.partition("\n")
        target = first.strip()
        if target in ("# node1", "# node2", "# node3", "# every node"):
            steps.append((target[2:], rest))
    return steps


class Node:
    """One node's directories, ports, shell environment and server process."""

    def __init__(self, n, work):
        self.n = n
        self.dir = Path(work) / f"node{n}"
        self.etc = self.dir / "etc"
        self.var = self.dir / "var"
        self.dir.mkdir(parents=True)
        self.base = free_port_base()
        self.env = dict(os.environ)
        self.env["PATH"] = f"{Path(BIN).parent}:{self.env['PATH']}"
        self.proc = None

    @property
    def config(self):
        return self.etc / "hangar.toml"

    def localize(self, text, placeholders):
        """The doc's text as this machine runs it (the substitutions deploy.md lists)."""
        text = re.sub(r"10\.0\.\d\.10", "127.0.0.1", text)
        offsets = {"3900": 0, "3901": 1, "3903": 3}
        text = re.sub(
            r":(3900|3901|3903)\b", lambda m: f":{self.base + offsets[m.group(1)]}", text
        )
        text = text.replace("/etc/hangar", str(self.etc)).replace("/var/lib/hangar", str(self.var))
        for name, value in placeholders.items():
            text = text.replace(name, value)
        assert "<" not in re.sub(r"<<EOF|\$\(", "", text), f"unfilled placeholder in {text}"
        return text

    def sh(self, script, check=True):
        """Runs `script` in this node's shell; exports persist to the next block."""
        envfile = self.dir / "env"
        full = f"set -euo pipefail\ncd {self.dir}\n{script}\nenv -0 > {envfile}\n"
        r = subprocess.run(["bash", "-c", full], env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"node{self.n} failed:\n{script}\n{r.stdout}\n{r.stderr}")
        if r.returncode == 0:
            pairs = envfile.read_bytes().split(b"\0")
            self.env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        return r

    def hangar(self, *args, check=True):
        r = subprocess.run(
            [BIN, "-c", str(self.config), *args], capture_output=True, text=True, env=self.env
        )
        if check and r.returncode != 0:
            raise AssertionError(f"hangar {args} on node{self.n}: {r.stderr}")
        return r

    def start(self):
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [BIN, "server", "-c", str(self.config)], stdout=log, stderr=log, env=self.env
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.hangar("node", "id", check=False).returncode == 0:
                return
            assert self.proc.poll() is None, (self.dir / "server.log").read_text()
            time.sleep(0.2)
        raise AssertionError(f"node{self.n} did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def s3_url(self):
        return f"http://127.0.0.1:{self.base}"


def retry(what, fn, timeout=WAIT_S):
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.time() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def cluster():
    work = tempfile.mkdtemp(prefix="hangar-cluster-")
    nodes = {n: Node(n, work) for n in NODES}
    state = {"nodes": nodes, "placeholders": {}, "work": work}
    yield state
    for node in state["nodes"].values():
        node.stop()
    if os.environ.get("HANGAR_KEEP_CLUSTER"):
        print(f"cluster directories kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def run_step(state, target, body):
    nodes, ph = state["nodes"], state["placeholders"]
    targets = list(NODES) if target == "every node" else [int(target[-1])]
    for n in targets:
        node = nodes[n]
        if body.strip().startswith("hangar server"):
            node.start()
            continue
        if "rpc_secret" in body and n != 1:
            # The one manual step: step 3's scp, as a copy.
            node.etc.mkdir(parents=True, exist_ok=True)
            shutil.copy(nodes[1].etc / "rpc_secret", node.etc / "rpc_secret")
        script = node.localize(body, ph)
        if "aws " in script:
            r = retry("aws", lambda: node.sh(script))
        else:
            r = node.sh(script)
        capture(n, body, r.stdout, ph)
        state.setdefault("outputs", []).append((n, body, r.stdout))


def capture(n, body, out, ph):
    """Fills the placeholders later steps use from what a step printed."""
    if body.strip().endswith("node id"):
        line = out.strip().splitlines()[-1]
        assert re.fullmatch(r"[0-9a-f]{16}@\S+", line), out
        ph[f"<node id of node{n}>"] = line
    for field, name in (("id", "<key id>"), ("secret", "<key secret>")):
        m = re.search(rf"^{field}:\s+(\S+)$", out, re.M)
        if "key create" in body and m:
            ph[name] = m.group(1)


def test_deploy_guide_literally(cluster):
    steps = doc_steps()
    assert len(steps) >= 10, "docs/deploy.md lost its runnable steps"
    for target, body in steps:
        run_step(cluster, target, body)
        if "layout apply --version 1" in body:
            # The first apply answers once the new cluster serves: a write through another
            # node right away is neither refused by a node still learning the layout nor
            # by one finishing its first sync (no retry here, on purpose).
            out = cluster["outputs"][-1][2]
            assert "not every node serves yet" not in out, out
            n2 = cluster["nodes"][2]
            n2.hangar("bucket", "create", "serving-right-after-apply")
            n2.hangar("bucket", "delete", "serving-right-after-apply")
    last_node, last_body, out = cluster["outputs"][-1]
    assert last_node == 3 and "cat hello-back.txt" in last_body
    assert out.endswith("\nhello from site 1\n"), out  # after the aws CLI's progress lines
    sent = (cluster["nodes"][1].dir / "hello.txt").read_bytes()
    assert (cluster["nodes"][3].dir / "hello-back.txt").read_bytes() == sent
    status = json.loads(cluster["nodes"][3].hangar("--json", "status").stdout)
    assert status["layout_version"] == 1 and status["replication_factor"] == 3
    assert sorted(n["partitions"] for n in status["nodes"]) == [256, 256, 256]


def aws(node, env, *args):
    r = subprocess.run(
        ["aws", "--endpoint-url", node.s3_url(), "s3", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if r.returncode != 0:
        raise AssertionError(f"aws {args} via node{node.n}: {r.stderr}")
    return r


def test_replacing_a_dead_node(cluster):
    nodes, ph = cluster["nodes"], cluster["placeholders"]
    n1, n2, n3 = nodes[1], nodes[2], nodes[3]
    env = n1.env
    objects = {}
    for i in range(5):
        path = n1.dir / f"obj{i}"
        path.write_bytes(os.urandom(200_000 + i * 300_000))
        objects[f"obj{i}"] = path.read_bytes()
        aws(n1, env, "cp", str(path), f"s3://photos/obj{i}")
    old_id = ph["<node id of node3>"].split("@")[0]

    # Node 3 dies for good: its disk is gone.
    n3.stop(signal.SIGKILL)
    shutil.rmtree(n3.var)
    # The CLI says what is wrong when its node is down, for every kind of verb.
    for verb in (["status"], ["layout", "show"], ["layout", "apply", "--version", "9"]):
        r = n3.hangar(*verb, check=False)
        assert r.returncode == 1 and r.stdout == "", r
        assert "cannot reach the admin API" in r.stderr, r.stderr
        assert "is `hangar server` running?" in r.stderr, r.stderr

    # A fresh node 4 in the same site, configured as node 3 was.
    n4 = Node(4, cluster["work"])
    nodes[4] = n4
    n4.etc.mkdir(parents=True)
    shutil.copy(n3.etc / "rpc_secret", n4.etc / "rpc_secret")
    text = n3.config.read_text().replace(str(n3.etc), str(n4.etc)).replace(str(n3.var), str(n4.var))
    for offset in (0, 1, 3):
        text = text.replace(f":{n3.base + offset}\"", f":{n4.base + offset}\"")
    # It finds the cluster through bootstrap_peers (node 1) rather than `node connect`.
    text = f'bootstrap_peers = ["{ph["<node id of node1>"]}"]\n' + text
    n4.config.write_text(text)
    n4.start()
    # Before it has a role, its S3 port says so.
    try:
        urllib.request.urlopen(n4.s3_url() + "/photos/obj0", timeout=10)
        raise AssertionError("a node outside the layout served S3")
    except urllib.error.HTTPError as e:
        assert e.code == 503
        assert "not in the cluster layout yet" in e.read().decode()

    new = n4.hangar("node", "id").stdout.strip()

    def assign_new():
        # Node 1 knows node 4 once their first gossip round ran (within about 5 s).
        n1.hangar("layout", "assign", new.split("@")[0][:6], "--zone", "site3", "--capacity", "1T")

    retry("assign", assign_new, timeout=30)
    n1.hangar("layout", "remove", old_id[:8])
    shown = n1.hangar("layout", "show").stdout
    assert "apply them with: hangar layout apply --version 2" in shown, shown
    wrong = n1.hangar("layout", "apply", "--version", "3", check=False)
    assert wrong.returncode == 1 and "--version 2" in wrong.stderr, wrong.stderr
    n1.hangar("layout", "apply", "--version", "2")
    # Node 3 will never acknowledge version 2: report it on its behalf.
    n1.hangar("layout", "skip-dead", old_id)

    def transition_done():
        s = json.loads(n1.hangar("--json", "status").stdout)
        assert s["layout_version"] == 2 and not s["layout_in_transition"], s
        return s

    status = retry("transition", transition_done, timeout=180)
    by_id = {n["id"]: n for n in status["nodes"]}
    assert by_id[new.split("@")[0]]["partitions"] == 256
    assert by_id[new.split("@")[0]]["connected"] is True
    assert by_id[old_id]["partitions"] == 0
    assert status["healthy"] is True

    # Every object is readable with node 1, then node 2, stopped: reads then need the new
    # node's copies (quorum 2 of 3).
    for stopped, reader in ((n1, n2), (n2, n1)):
        stopped.stop()
        for key, data in objects.items():
            out = cluster["nodes"][1].dir / f"back-{key}"

            def read():
                aws(reader, env, "cp", f"s3://photos/{key}", str(out))
                assert out.read_bytes() == data, key

            retry("read", read, timeout=30)
            out.unlink()
        for key, data in objects.items():
            out = n4.dir / f"back-{key}"
            aws(n4, env, "cp", f"s3://photos/{key}", str(out))
            assert out.read_bytes() == data, key
        stopped.start()


def test_dev_with_three_nodes_replicates():
    """`hangar dev --nodes 3`: one command, three zones, RF 3, exports that work at once."""
    ports = [p for i in range(3) for p in (3900 + 10 * i, 3901 + 10 * i, 3902 + 10 * i, 3903 + 10 * i)]
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                pytest.skip(f"port {port} is busy (hangar dev --nodes uses 3900..3923)")
    work = Path(tempfile.mkdtemp(prefix="hangar-devc-"))
    log = open(work / "dev.log", "wb")
    proc = subprocess.Popen(
        [BIN, "dev", "--nodes", "3", "--dir", str(work / "d")],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        lines = []
        deadline = time.time() + 60
        while not any(line.startswith("# node3:") for line in lines):
            assert time.time() < deadline and proc.poll() is None, (work / "dev.log").read_text()
            lines.append(proc.stdout.readline())
        env = dict(os.environ)
        for line in lines:
            if line.startswith("export "):
                name, value = line[len("export ") :].strip().split("=", 1)
                env[name] = value
        assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:3900"
        assert any("S3 http://127.0.0.1:3920" in line for line in lines), lines
        src = work / "payload"
        src.write_bytes(os.urandom(1_500_000))
        run = lambda *a: subprocess.run(a, env=env, capture_output=True, text=True, check=True)
        run("aws", "s3", "cp", str(src), "s3://hangar/payload")
        back = work / "back"
        run("aws", "--endpoint-url", "http://127.0.0.1:3920", "s3", "cp", "s3://hangar/payload", str(back))
        assert back.read_bytes() == src.read_bytes()
        node2 = work / "d" / "node2" / "hangar.toml"
        status = json.loads(run(BIN, "-c", str(node2), "--json", "status").stdout)
        assert status["replication_factor"] == 3 and status["healthy"] is True
        zones = sorted(n["zone"] for n in status["nodes"])
        assert zones == ["dc1", "dc2", "dc3"]
        assert all(n["connected"] and n["partitions"] == 256 for n in status["nodes"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
