"""An emulated multi-node Ray cluster on one machine: each node in its own network namespace, with its own
IP, temp dir and CPUs, joined to the head through a veth link to a bridge, every link rate-limited with tc.

    python -m orchestrator.running.emulated up --nodes 3 --rate 300mbit     (or scripts/emulated_cluster.sh up ...)
    eval "$(python -m orchestrator.running.emulated env)"                   RAY_ADDRESS and the auth token for a sweep
    orchestrator sweep JOB --address "$RAY_ADDRESS"                 one worker per node (1 CPU each by default)
    python -m orchestrator.running.emulated shape --rate 1gbit              every link at a new rate
    python -m orchestrator.running.emulated cut --node 1 / restore --node 1 a node's link down, and back (its Ray node
                                                                    restarted if Ray gave it up meanwhile)
    python -m orchestrator.running.emulated down                            stops and deletes only what `up` made

    up --nodes 16 --share-cores ...                                 16 nodes on 2 cores: accelerator-like
                                                                    workers (workload.model emulated) only
    up --nodes 8 --cpus-per-node 2 ...                              2 workers a node (PACK: ranks node by node;
                                                                    traffic within a node is not shaped)
    up ... --straggler-node 3 --straggler-compute 1.5               one slow node: its device time 1.5x (or
                                                                    --straggler-rate 50mbit: its link)

Layout: a bridge in the root namespace holds the subnet's first address and the head (``--num-cpus 0``: the
driver and the sweep's recorder live there); node i is namespace ``<name>-n<i>`` at the subnet's 10+i. Its
link is a veth pair, one end on the bridge, the other in the namespace; both ends get a ``tbf`` qdisc at the
rate (this kernel's qdiscs: tbf and htb work, netem does not), so traffic between two nodes crosses two
shaped hops, as between two hosts with one NIC each. Node i's processes are pinned to its cores
(``taskset``); ``--share-cores`` allows more node CPUs than cores, up to 8 a core, and then every node may run
on every core (the kernel balances them; the state says so). Before anything is made, the memory it needs (about 300 MB a node, 400 MB a worker) is
checked against what is available, and nodes start a few at a time (as many as there are cores).

Everything made is written to the state file before it is made, so ``down`` removes exactly that, even after
a failed ``up``. Needs root (namespaces and tc). Refusals exit 2 with the reason and the fix.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Callable, Optional

from orchestrator.job import rates
from orchestrator.errors import UserError

DEFAULT_STATE = Path("/tmp/orchestrator-emulated")
STATE_FILE = "state.json"
BIN = Path(sys.executable).parent
GSO_MAX_BYTES = 64 * 1024  # the largest packet the stack hands a qdisc (GSO/TSO)
MAX_SHARE = 8  # node CPUs per core at most with --share-cores (accelerator-like workers: compute as device time)
NODE_MB = 300  # a Ray node's own processes (raylet, agents), with its share of the head's, idle
WORKER_MB = 400  # one training worker (torch imported, a model of a few MiB, DDP's buckets)


def _run(*command: str, check: bool = True, namespace: Optional[str] = None) -> subprocess.CompletedProcess:
    full = (["ip", "netns", "exec", namespace] if namespace else []) + list(command)
    done = subprocess.run(full, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no route or address on this machine touches."""
    used = _run("ip", "-4", "route", "show").stdout + _run("ip", "-4", "addr", "show").stdout
    net = free_subnet(used, secrets.randbelow(256))
    if net is None:
        raise UserError("no free /24 in 10.213.0.0/16 for the emulated cluster's bridge; bring another one down")
    return net


def free_subnet(routes_and_addresses: str, start: int) -> Optional[ipaddress.IPv4Network]:
    """The first 10.213.x.0/24 from x = ``start`` on, wrapping round to start - 1, that no network in the text
    (``ip route`` / ``ip addr`` output) overlaps; None when all 256 are taken. (The default route, /0, is no
    network of this machine's.)"""
    taken = []
    for word in routes_and_addresses.split():
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    for k in range(256):
        net = ipaddress.ip_network(f"10.213.{(start + k) % 256}.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    return None


def usable_cores() -> list[int]:
    """The cores this process may run on (a cpuset-limited container allows some, not always 0..n-1)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def node_cores(index: int, per_node: int, cores: list[int], unpinned: bool) -> list[int]:
    """The cores node ``index`` is pinned to: ``per_node`` of the usable ``cores`` in turn, or all of them where
    the nodes want more CPUs than there are cores (``unpinned``: the kernel balances them)."""
    if unpinned:
        return list(cores)
    return sorted({cores[(index * per_node + k) % len(cores)] for k in range(per_node)})


class Emulated:
    """The state of one emulated cluster, kept in ``<state>/state.json``."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self.file = self.dir / STATE_FILE
        self.data: dict = json.loads(self.file.read_text()) if self.file.exists() else {}

    # --- state ---
    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.file)

    @property
    def env(self) -> dict[str, str]:
        """What a driver (a sweep, ray job submit) needs in its environment to attach."""
        return {"RAY_ADDRESS": self.data["gcs_address"], "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": self.data["token_path"]}

    def ray_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**keep, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": self.data["token_path"],
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    # --- up ---
    def up(self, nodes: int, rate_bps: float, cpus_per_node: int = 1, share_cores: bool = False,
           dashboard: bool = False, progress=print, straggler: Optional[dict] = None) -> None:
        """``straggler``: {"node": i, "rate_bps": slower link, "compute_scale": longer device time} (either)."""
        self.make_links(nodes, rate_bps, cpus_per_node, share_cores, progress, straggler)
        try:
            self._start_head(dashboard)
            progress(f"Ray head at {self.data['gcs_address']} (0 CPUs: the driver's node)")
            # A few nodes at a time (as many as the machine has cores): 16 raylets starting at once on 2 cores
            # miss Ray's own start-up deadline.
            started, cores = 0, self.data["host_cores"]
            for batch in range(0, nodes, cores):
                for node in self.data["nodes"][batch:batch + cores]:
                    self._start_node(node)
                    started += 1
                self.wait_for_nodes(started, progress=progress if started == nodes else (lambda *_: None))
        except BaseException:
            progress("up failed: removing what it made")
            self.down(progress=lambda *_: None)
            raise

    def make_links(self, nodes: int, rate_bps: float, cpus_per_node: int = 1, share_cores: bool = False,
                   progress=print, straggler: Optional[dict] = None) -> None:
        """The nodes' namespaces on the bridge, their links shaped, no Ray yet (``up`` starts it; a bench of
        the links alone stops here, and ``down`` removes what this made)."""
        if self.data:
            raise UserError(f"an emulated cluster is already up with state in {self.dir}; run 'down' first, "
                            "or pass another --state directory")
        _preflight(nodes, cpus_per_node, share_cores)
        if straggler is not None and not 0 <= straggler["node"] < nodes:
            raise UserError(f"--straggler-node {straggler['node']}: the cluster has nodes 0..{nodes - 1}")
        ident = secrets.token_hex(2)
        name = f"oe{ident}"
        net = _pick_subnet()
        hosts = list(net.hosts())
        temp = Path(f"/tmp/{name}")  # short: Ray puts unix sockets under it
        usable = usable_cores()
        cores = len(usable)
        self.data = {"name": name, "bridge": f"{name}br", "subnet": str(net), "bridge_ip": str(hosts[0]),
                     "rate_bps": rate_bps, "cpus_per_node": cpus_per_node, "temp_dir": str(temp),
                     "wanted_cpus": nodes * cpus_per_node,
                     "token_path": str(temp / "auth_token"), "host_cores": cores, "usable_cores": usable,
                     "share_cores": share_cores,
                     "nodes": [], "head_pid": None, "gcs_address": None, "made": [], "straggler": straggler}
        self.save()
        try:
            temp.mkdir(mode=0o755)
            self._made("dir", str(temp))
            token = Path(self.data["token_path"])
            token.write_text(secrets.token_hex(32))
            token.chmod(0o600)
            progress(f"bridge {self.data['bridge']} at {hosts[0]}/{net.prefixlen}")
            self._made("bridge", self.data["bridge"])
            _run("ip", "link", "add", self.data["bridge"], "type", "bridge")
            _run("ip", "addr", "add", f"{hosts[0]}/{net.prefixlen}", "dev", self.data["bridge"])
            _run("ip", "link", "set", self.data["bridge"], "up")
            for i in range(nodes):
                self._make_node(i, hosts[10 + i], net.prefixlen, usable)
            self.shape(rate_bps)
            progress(f"links shaped at {rates.show(rate_bps)} (tbf on both ends of every node's veth)")
            corked = [n["index"] for n in self.data["nodes"] if n.get("tcp_autocorking")]
            if corked:
                progress(f"warning: TCP autocorking stayed on in node(s) {corked} (net.ipv4.tcp_autocorking could "
                         "not be set in their namespaces): a gloo message's tail may wait behind the previous "
                         "message's tokens, up to 2x a call's wire time (bench/link_flows.py)")
            if straggler:
                progress(f"straggler: node {straggler['node']}"
                         + (f", its link at {rates.show(straggler['rate_bps'])}" if straggler.get("rate_bps") else "")
                         + (f", its device time x{straggler['compute_scale']:g}" if straggler.get("compute_scale") else ""))
        except BaseException:
            progress("up failed: removing what it made")
            self.down(progress=lambda *_: None)
            raise

    def _made(self, kind: str, name: str) -> None:
        self.data["made"].append([kind, name])
        self.save()

    def _make_node(self, i: int, ip, prefixlen: int, cores: list[int]) -> None:
        name = self.data["name"]
        namespace, host_if, ns_if = f"{name}-n{i}", f"{name}n{i}", f"{name}n{i}p"
        per = self.data["cpus_per_node"]
        # More node CPUs than cores: every node may run on every core, and the kernel balances them. (Pinned one
        # a core, the nodes Ray happens to pick decide the load: 7 of 8 ranks on one core and 1 on the other.)
        pinned = node_cores(i, per, cores, bool(self.data.get("share_cores")) and self.data["wanted_cpus"] > len(cores))
        node = {"index": i, "namespace": namespace, "host_if": host_if, "ns_if": ns_if, "ip": str(ip),
                "cores": pinned, "pid": None, "pid_start": None, "temp_dir": None, "starts": 0}
        self.data["nodes"].append(node)
        self._made("netns", namespace)
        try:
            _run("ip", "netns", "add", namespace)
        except RuntimeError as err:
            raise UserError(f"cannot create a network namespace ({err}); the emulated cluster needs "
                            "'ip netns add' (root, and namespaces allowed in this container)") from None
        self._made("link", host_if)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", namespace)
        _run("ip", "link", "set", host_if, "master", self.data["bridge"])
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "link", "set", "lo", "up", namespace=namespace)
        # The link's queue is the tbf in the node's own namespace, so TCP autocorking (a small write held while
        # the socket's earlier packets are still queued on the host) held the last bytes of every gloo message
        # behind the previous message's wait for tokens: a message of one GSO packet and a tail (64 KiB
        # segments: a 1 MiB bucket over 8 ranks) took 2x its wire time (82 ms against 40 ms with it off, at
        # 400 Mbit/s: bench/link_flows.py). Per namespace.
        _run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/tcp_autocorking", namespace=namespace, check=False)
        corked = _run("cat", "/proc/sys/net/ipv4/tcp_autocorking", namespace=namespace, check=False).stdout.strip()
        node["tcp_autocorking"] = int(corked) if corked.isdigit() else None  # None: this kernel has no such knob
        _run("ip", "addr", "add", f"{ip}/{prefixlen}", "dev", ns_if, namespace=namespace)
        _run("ip", "link", "set", ns_if, "up", namespace=namespace)
        _run("ip", "route", "add", "default", "via", self.data["bridge_ip"], namespace=namespace)
        self.save()

    def shape(self, rate_bps: float, bucket: Optional[Callable[[float], int]] = None) -> None:
        """Every node's link at ``rate_bps``, both directions (tbf on both ends of its veth); ``bucket``: the
        tbf bucket at a rate (``tbf_bucket_bytes``; a bench of the links passes others)."""
        # The queue holds up to 100 ms at the rate.
        bucket = bucket or tbf_bucket_bytes
        straggler = self.data.get("straggler") or {}
        for node in self.data["nodes"]:
            rate = rate_bps
            if node["index"] == straggler.get("node") and straggler.get("rate_bps"):
                rate = min(rate_bps, straggler["rate_bps"])  # the straggler's link stays the slower one
            burst = bucket(rate)
            for dev, namespace in ((node["host_if"], None), (node["ns_if"], node["namespace"])):
                try:
                    _run("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rates.tc(rate),
                         "burst", str(burst), "latency", "100ms", namespace=namespace)
                except RuntimeError as err:
                    raise UserError(f"cannot shape {dev} with tc's tbf qdisc ({err}); the emulated cluster needs "
                                    "sch_tbf in this kernel") from None
        self.data["rate_bps"] = rate_bps
        self.save()

    def _start_head(self, dashboard: bool) -> None:
        port = _free_port()
        head_dir = Path(self.data["temp_dir"]) / "h"
        head_dir.mkdir()
        args = ["--head", "--port", str(port), "--node-ip-address", self.data["bridge_ip"], "--num-cpus", "0",
                "--ray-client-server-port", str(_free_port()), "--node-manager-port", str(_free_port()),
                "--object-manager-port", str(_free_port()), "--include-dashboard", str(dashboard).lower(),
                "--dashboard-port", str(_free_port()), "--dashboard-host", self.data["bridge_ip"],
                "--dashboard-agent-grpc-port", str(_free_port()),
                "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port())]
        self.data["head_pid"], self.data["head_pid_start"] = self._spawn(args, head_dir, None, None)
        self.data["gcs_address"] = f"{self.data['bridge_ip']}:{port}"
        self.save()
        _wait_for_port(self.data["bridge_ip"], port, 60, self.data["head_pid"], head_dir / "ray-start.log")

    def _start_node(self, node: dict) -> None:
        node["starts"] += 1
        node_dir = Path(self.data["temp_dir"]) / f"n{node['index']}-{node['starts']}"
        node_dir.mkdir()
        args = ["--address", self.data["gcs_address"], "--node-ip-address", node["ip"],
                "--num-cpus", str(self.data["cpus_per_node"])]
        node["temp_dir"] = str(node_dir)
        # Workers inherit the raylet's environment. Every namespace resolves the machine's hostname to
        # 127.0.0.1, where gloo would bind and tell its peers to connect: name the node's own interface, as on
        # a host with several NICs.
        interface = {"GLOO_SOCKET_IFNAME": node["ns_if"], "NCCL_SOCKET_IFNAME": node["ns_if"],
                     "HOROVOD_GLOO_IFACE": node["ns_if"]}
        straggler = self.data.get("straggler") or {}
        if node["index"] == straggler.get("node") and straggler.get("compute_scale"):
            from orchestrator.workloads.device_time import SCALE_ENV

            interface[SCALE_ENV] = str(straggler["compute_scale"])  # a slower device on this node
        node["pid"], node["pid_start"] = self._spawn(args, node_dir, node["namespace"], node["cores"], interface)
        self.save()

    def _spawn(self, args: list[str], node_dir: Path, namespace: Optional[str], cores: Optional[list[int]],
               extra_env: Optional[dict] = None) -> tuple[int, Optional[int]]:
        """The process's pid and its start time (``_started``): what tells it from a later process given the
        same pid."""
        command = [str(BIN / "ray"), "start", "--block", "--temp-dir", str(node_dir), *args]
        if cores is not None:
            command = ["taskset", "-c", ",".join(map(str, cores)), *command]
        if namespace:
            command = ["ip", "netns", "exec", namespace, *command]
        log = open(node_dir / "ray-start.log", "w")
        process = subprocess.Popen(command, env={**self.ray_env(), **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        return process.pid, _started(process.pid)

    def alive_nodes(self) -> list[str]:
        """The node IPs the head's GCS counts alive."""
        script = ("import ray, json; ray.init(logging_level='ERROR'); "
                  "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))")
        done = subprocess.run([sys.executable, "-c", script], env={**self.ray_env(), **self.env},
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return []
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return []

    def wait_for_nodes(self, count: int, timeout: float = 120, progress=print) -> None:
        deadline = time.monotonic() + timeout
        wanted = {n["ip"] for n in self.data["nodes"]}
        while time.monotonic() < deadline:
            up = wanted & set(self.alive_nodes())
            if len(up) >= count:
                progress(f"{len(up)} node(s) up: " + ", ".join(sorted(up)))
                return
            for node in self.data["nodes"]:
                if node.get("temp_dir") and not _alive(node["pid"], node.get("pid_start")):  # started, and gone
                    log = Path(node["temp_dir"]) / "ray-start.log"
                    tail = log.read_text()[-1500:] if log.exists() else ""
                    raise RuntimeError(f"the Ray node in {node['namespace']} exited:\n{tail}")
            time.sleep(2)
        raise RuntimeError(f"{count} Ray nodes did not join in {timeout:.0f} s; logs under {self.data['temp_dir']}")

    # --- faults ---
    def node(self, index: int) -> dict:
        nodes = self.data.get("nodes") or []
        if not 0 <= index < len(nodes):
            raise UserError(f"--node {index}: the emulated cluster has nodes 0..{len(nodes) - 1}")
        return nodes[index]

    def cut(self, index: int) -> dict:
        """Node ``index``'s link down (the bridge end): its packets go nowhere, no reset is sent."""
        node = self.node(index)
        _run("ip", "link", "set", node["host_if"], "down")
        return node

    def restore(self, index: int, progress=print) -> dict:
        """The link up again; the node's Ray processes restarted where Ray gave the node up meanwhile."""
        node = self.node(index)
        _run("ip", "link", "set", node["host_if"], "up")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if node["ip"] in self.alive_nodes() and _alive(node["pid"], node.get("pid_start")):
                progress(f"node {index} ({node['ip']}) is back")
                return node
            if not _alive(node["pid"], node.get("pid_start")):
                break
            time.sleep(2)
        self._stop_node(node)
        progress(f"node {index} ({node['ip']}): Ray had given it up; starting it again")
        self._start_node(node)
        alive = sum(1 for n in self.data["nodes"] if _alive(n["pid"], n.get("pid_start")))
        self.wait_for_nodes(alive, progress=progress)
        return node

    # --- down ---
    def _stop_node(self, node: dict) -> None:
        _stop(node.get("pid"), node.get("temp_dir"), node.get("pid_start"))
        node["pid"], node["pid_start"] = None, None
        self.save()

    def down(self, progress=print) -> None:
        if not self.data:
            progress(f"no emulated cluster has state in {self.dir}: nothing to stop")
            return
        for node in reversed(self.data.get("nodes") or []):
            self._stop_node(node)
        _stop(self.data.get("head_pid"), str(Path(self.data["temp_dir"]) / "h"), self.data.get("head_pid_start"))
        for kind, name in reversed(self.data.get("made") or []):
            if kind == "netns":
                _run("ip", "netns", "delete", name, check=False)
            elif kind in ("link", "bridge"):
                _run("ip", "link", "delete", name, check=False)
            elif kind == "dir":
                _kill_mentioning(name)
                shutil.rmtree(name, ignore_errors=True)
        progress(f"emulated cluster {self.data.get('name')} is down")
        self.data = {}
        self.file.unlink(missing_ok=True)

    def describe(self) -> dict:
        return {**{k: self.data.get(k) for k in ("name", "subnet", "gcs_address", "rate_bps", "cpus_per_node",
                                                 "host_cores", "share_cores", "straggler")},
                "rate": rates.show(self.data["rate_bps"]),
                "nodes": [{k: n[k] for k in ("index", "namespace", "ip", "cores")}
                          | {"running": _alive(n["pid"], n.get("pid_start")), "tcp_autocorking": n.get("tcp_autocorking")}
                          for n in self.data["nodes"]],
                "shared_cores": shared_cores(self.data["nodes"])}


def tbf_bucket_bytes(rate_bps: float) -> int:
    """The tbf bucket of a link at ``rate_bps``: 2 ms at the rate, and never less than two 64 KiB GSO packets
    with their headers. A packet larger than the bucket is cut into MTU segments in the qdisc, and with one
    64 KiB bucket that cost grew with the node count: 16 concurrent flows at 200 Mbit/s, one a link, carried
    0.58 of the rate each (4 flows: 0.94); with 128 KiB, 0.95 at 4 and at 16 (bench/link_flows.py, bench/results/link-flows.md)."""
    return max(2 * GSO_MAX_BYTES, int(rate_bps / 8 * 0.002))


def shared_cores(nodes: list[dict]) -> dict[int, list[int]]:
    """Core -> the nodes pinned to it, for the cores more than one node shares."""
    users: dict[int, list[int]] = {}
    for node in nodes:
        for core in node["cores"]:
            users.setdefault(core, []).append(node["index"])
    return {core: who for core, who in users.items() if len(who) > 1}


def _preflight(nodes: int, cpus_per_node: int, share_cores: bool) -> None:
    if os.geteuid() != 0:
        raise UserError("the emulated cluster needs root (network namespaces and tc); run it as root or with sudo")
    for tool in ("ip", "tc", "taskset"):
        if shutil.which(tool) is None:
            raise UserError(f"'{tool}' is not installed; the emulated cluster needs iproute2 and util-linux")
    if nodes < 1:
        raise UserError(f"--nodes {nodes}: must be at least 1")
    if cpus_per_node < 1:
        raise UserError(f"--cpus-per-node {cpus_per_node}: must be at least 1")
    cores = len(usable_cores())
    wanted = nodes * cpus_per_node
    if wanted > cores and not share_cores:
        raise UserError(f"--nodes {nodes} x --cpus-per-node {cpus_per_node} = {wanted} CPUs, but this machine has "
                        f"{cores}; use at most {cores // cpus_per_node} node(s), or pass --share-cores (nodes then "
                        "share cores, and their compute slows down)")
    if wanted > MAX_SHARE * cores:
        raise UserError(f"--nodes {nodes} x --cpus-per-node {cpus_per_node} = {wanted} CPUs: more than {MAX_SHARE} "
                        f"per core on this machine's {cores}; use at most {MAX_SHARE * cores // cpus_per_node} node(s)")
    need, available = memory_needed_mb(nodes, cpus_per_node), available_mb()
    if available is not None and need > available:
        raise UserError(f"--nodes {nodes} with --cpus-per-node {cpus_per_node} need about {need} MB ({NODE_MB} MB a "
                        f"node, {WORKER_MB} MB a worker, one worker per node CPU) and this machine has {available} MB "
                        f"available; use at most {max_nodes_for(available, cpus_per_node)} node(s)")


def memory_needed_mb(nodes: int, cpus_per_node: int) -> int:
    """Memory the cluster takes with a worker on every node CPU: the head and each node's Ray processes, and
    the workers."""
    return NODE_MB * (nodes + 1) + WORKER_MB * nodes * cpus_per_node


def max_nodes_for(available: int, cpus_per_node: int) -> int:
    return max(0, (available - NODE_MB) // (NODE_MB + WORKER_MB * cpus_per_node))


def available_mb() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _straggler(args) -> Optional[dict]:
    import math

    given = args.straggler_rate is not None or args.straggler_compute is not None
    if args.straggler_node is None:
        if given:
            raise UserError("--straggler-rate/--straggler-compute need --straggler-node (which node is slow)")
        return None
    if not given:
        raise UserError(f"--straggler-node {args.straggler_node}: say how it is slow, with --straggler-rate (its "
                        "link) or --straggler-compute (its device time, e.g. 1.3)")
    out = {"node": args.straggler_node}
    if args.straggler_rate is not None:
        out["rate_bps"] = rates.parse(args.straggler_rate, "--straggler-rate")
    if args.straggler_compute is not None:
        if not (math.isfinite(args.straggler_compute) and 0.1 <= args.straggler_compute <= 100):
            raise UserError(f"--straggler-compute {args.straggler_compute}: must be a factor in 0.1..100")
        out["compute_scale"] = args.straggler_compute
    return out


def stat_fields(stat: str) -> list[str]:
    """/proc/PID/stat's fields from the state on (the third field; the command name before it may hold spaces
    and parentheses): [state, ppid, pgrp, ..., starttime (index 19), ...]."""
    return stat[stat.rindex(")") + 2:].split()


def _stat(pid: int) -> Optional[list[str]]:
    try:
        return stat_fields(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
        return None


def _started(pid: int) -> Optional[int]:
    """When ``pid`` started, in clock ticks after boot (/proc/PID/stat's starttime); None if it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def same_process(fields: Optional[list[str]], started: Optional[int]) -> bool:
    """Whether a pid's stat fields are of the process recorded with start time ``started`` (None: a state
    written before start times were kept, taken on trust) and it is running (not a zombie)."""
    if not fields or fields[0] == "Z":
        return False
    return started is None or (len(fields) > 19 and int(fields[19]) == int(started))


def _alive(pid: Optional[int], started: Optional[int] = None) -> bool:
    """Whether the process recorded as (pid, started) runs: a later process that was given the pid is not it."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return same_process(_stat(pid), started)


def _stop(pid: Optional[int], temp_dir: Optional[str], started: Optional[int] = None) -> None:
    """SIGTERM the `ray start --block` process alone (it stops its node in ~2 s), then SIGKILL what is left of
    its session and anything still naming its temp dir. Signals only the process recorded (the pid and its
    start time), never one that got its pid since."""
    ours = bool(pid) and _alive(pid, started)
    if ours:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Its session (the raylet, its workers) keeps the pid as its id after the leader exits: killed where the
    # leader was ours, or, gone now, where no process has taken the pid since.
    if pid and (ours or not _pid_taken(pid, started)):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if temp_dir:
        _kill_mentioning(temp_dir)


def _pid_taken(pid: int, started: Optional[int]) -> bool:
    """Whether a process other than the one recorded now has ``pid`` (unknown start time: assume so)."""
    fields = _stat(pid)
    if fields is None:
        return False
    return started is None or len(fields) <= 19 or int(fields[19]) != int(started)


def mentions(cmdline: bytes, path: str) -> bool:
    """Whether a command line (NUL-separated, as /proc/PID/cmdline) names ``path`` or a path under it: as a
    whole path, never as the start of a longer name (``/tmp/x/n1-1`` is not in ``/tmp/x/n1-10``)."""
    pattern = re.compile(r"(?<![^\s'\",:;=])" + re.escape(path.rstrip("/")) + r"(?![^/\s'\",:;=])")
    return any(pattern.search(arg) for arg in cmdline.decode("utf-8", errors="replace").split("\0"))


def pids_mentioning(text: str) -> list[int]:
    """Processes (not this one) whose command line names the path ``text``: what a node's temp dir started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mentions((entry / "cmdline").read_bytes(), text):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _kill_mentioning(text: str) -> None:
    deadline = time.monotonic() + 10
    while (pids := pids_mentioning(text)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


def _wait_for_port(host: str, port: int, timeout: float, pid: int, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if not _alive(pid):
                raise RuntimeError(f"ray start --head exited:\n{log.read_text()[-1500:] if log.exists() else ''}")
            time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not listen on {host}:{port} in {timeout:.0f} s; see {log}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="emulated_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help=f"state directory (default {DEFAULT_STATE})")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring a cluster up")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--rate", default="1gbit", help=f"every node's link rate, {rates.FORMS} (default 1gbit)")
    up.add_argument("--cpus-per-node", type=int, default=1)
    up.add_argument("--share-cores", action="store_true", help="allow more node CPUs than the machine has cores")
    up.add_argument("--dashboard", action="store_true", help="start the Ray dashboard (for ray job submit)")
    up.add_argument("--straggler-node", type=int, help="make this node the straggler (with one of the two below)")
    up.add_argument("--straggler-rate", help="the straggler's link rate (slower than --rate)")
    up.add_argument("--straggler-compute", type=float,
                    help="the straggler's device time over the others' (model: emulated workers; e.g. 1.3)")
    sub.add_parser("down", help="stop the cluster and delete what up made")
    sub.add_parser("status", help="the cluster's layout as JSON")
    sub.add_parser("env", help="shell exports to attach a sweep to it")
    shape = sub.add_parser("shape", help="set every node's link rate")
    shape.add_argument("--rate", required=True)
    for name, what in (("cut", "take a node's link down"), ("restore", "bring a node's link back")):
        p = sub.add_parser(name, help=what)
        p.add_argument("--node", type=int, required=True)
    args = parser.parse_args(argv)
    cluster = Emulated(args.state)
    say = lambda text: print(f"emulated cluster: {text}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.command == "up":
            rate = rates.parse(args.rate, "--rate")
            cluster.up(args.nodes, rate, args.cpus_per_node, args.share_cores, args.dashboard, progress=say,
                       straggler=_straggler(args))
            for key, value in cluster.env.items():
                print(f"export {key}={value}")
            shared = shared_cores(cluster.data["nodes"])
            if shared:
                say("cores shared by nodes: " + "; ".join(f"core {c}: nodes {', '.join(map(str, n))}"
                                                          for c, n in sorted(shared.items())))
            return 0
        if args.command == "down":
            cluster.down(progress=say)
            return 0
        if not cluster.data:
            raise UserError(f"no emulated cluster has state in {cluster.dir}; run 'up' first")
        if args.command == "status":
            print(json.dumps(cluster.describe(), indent=2))
        elif args.command == "env":
            for key, value in cluster.env.items():
                print(f"export {key}={value}")
        elif args.command == "shape":
            rate = rates.parse(args.rate, "--rate")
            cluster.shape(rate)
            say(f"links shaped at {rates.show(rate)}")
        elif args.command == "cut":
            node = cluster.cut(args.node)
            say(f"node {args.node} ({node['ip']}) cut off: {node['host_if']} is down")
        elif args.command == "restore":
            cluster.restore(args.node, progress=say)
        return 0
    except UserError as err:
        print(f"emulated cluster: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"emulated cluster: failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
