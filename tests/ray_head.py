"""A real Ray cluster for tests: `ray start --head` on free ports, its own temp dir, token auth on, and
optionally more nodes on the same machine. Stops only the processes it started, even when a test fails."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing, contextmanager
from pathlib import Path

from orchestrator.running.emulated import pids_mentioning

BIN = Path(sys.executable).parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port never handed out before in this process: the kernel may offer a just-closed port again,
    and Ray refuses two components on one port (seen: the dashboard and the client server both got 41103)."""
    while True:
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _node_ports(worker_port_base: int) -> list[str]:
    base = worker_port_base
    return [
        "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
        "--min-worker-port", str(base), "--max-worker-port", str(base + 999),
    ]


@contextmanager
def two_nodes():
    """A head and one more node, 1 CPU each, token auth on; stopped however the test ends."""
    started = RayTestCluster(head_cpus=1)
    try:
        started.add_node(cpus=1)
        started.wait_for_nodes(2)
        yield started
    finally:
        started.stop()


class RayTestCluster:
    def __init__(self, head_cpus: int = 1):
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray puts unix sockets here
        token_file = self.temp_dir / "auth_token"
        token_file.write_text(secrets.token_hex(32))
        token_file.chmod(0o600)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_file),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.gcs_address = f"127.0.0.1:{self.gcs_port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self._nodes: list[subprocess.Popen] = []
        self._port_block = 12000 + 2000 * secrets.randbelow(8)
        try:
            self._start_head(head_cpus)
        except BaseException:
            self.stop()
            raise

    def _start_head(self, head_cpus: int) -> None:
        self._start(["--head", "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
                     "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(free_port()),
                     "--num-cpus", str(head_cpus), "--include-dashboard", "true"])
        self._wait_for_dashboard()

    def add_node(self, cpus: int = 1) -> None:
        self._start(["--address", self.gcs_address, "--num-cpus", str(cpus)])

    def kill_node(self, index: int) -> None:
        """Lose a node the hard way: SIGKILL its raylet and everything else in its process group."""
        _signal_group(self._nodes[index], signal.SIGKILL)
        for pid in pids_mentioning(str(self.temp_dir / f"n{index}")):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _start(self, args: list[str]) -> None:
        index = len(self._nodes)
        # Each node its own temp dir: nodes sharing one garbage-collect each other's runtime_env packages.
        node_dir = self.temp_dir / f"n{index}"
        node_dir.mkdir()
        log = open(self.temp_dir / f"node{index}.log", "w")
        # Worker ports below the kernel's ephemeral range (where free_port() finds the others), a block per node.
        ports = _node_ports(self._port_block + 1000 * index)
        command = [str(BIN / "ray"), "start", "--block", "--temp-dir", str(node_dir), *ports, *args]
        # Its own session: the node's processes (gcs, raylet, dashboard, workers) share its process group.
        self._nodes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))

    def _wait_for_dashboard(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(node.poll() is not None for node in self._nodes):
                tail = (self.temp_dir / "node0.log").read_text()[-2000:]
                raise RuntimeError(f"ray start exited early:\n{tail}")
            try:
                urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2)
                return
            except urllib.error.HTTPError:  # any HTTP answer (401 without a token) means it is serving
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"Ray dashboard did not come up in {timeout} s; see {self.temp_dir}")

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        script = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
        while time.monotonic() < deadline:
            done = subprocess.run([sys.executable, "-c", script], env={**self.env, "RAY_ADDRESS": self.gcs_address},
                                  capture_output=True, text=True, timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(2)
        raise RuntimeError(f"{count} Ray nodes did not come up in {timeout} s")

    def stop(self) -> None:
        for node in reversed(self._nodes):
            # The `ray start --block` process alone: it stops its node's processes and exits in ~2 s. SIGTERM to
            # the whole group left it waiting until the SIGKILL below (20 s a cluster).
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in self._nodes:
            try:
                node.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node in self._nodes:
            _signal_group(node, signal.SIGKILL)
        # Anything of ours that left its process group still names our temp dir on its command line.
        deadline = time.monotonic() + 15
        while (pids := pids_mentioning(str(self.temp_dir))) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
