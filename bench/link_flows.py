"""What a shaped link of the emulated cluster carries when many links carry at once: N network namespaces on a
bridge, each link shaped as orchestrator/running/emulated.py shapes it (tbf on both ends of its veth), N TCP
flows in a ring (node i sends to node i+1, as a ring all-reduce does), each for a few seconds; the rate each
flow got over the link's rate, for the tbf bucket the emulated cluster uses (``emulated.tbf_bucket_bytes``) and
for the one it used before (one 64 KiB GSO packet, or 2 ms at the rate). No Ray: the links alone.

    sudo .venv/bin/python bench/link_flows.py [--nodes 4,8,16] [--rates 100mbit,200mbit,400mbit] [--seconds 4]

Writes bench/results/link-flows.{json,md}; asserts nothing. Root (namespaces and tc).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.job import rates  # noqa: E402
from orchestrator.running import emulated  # noqa: E402

PREFIX = "olf"
SUBNET = "10.214.77"
PORT = 5301
BUCKETS = {
    "tbf_bucket_bytes (now)": emulated.tbf_bucket_bytes,
    "one 64 KiB packet (before)": lambda rate: max(64 * 1024, int(rate / 8 * 0.002)),
}
FLOW = r"""
import socket, sys, time
if sys.argv[1] == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(1); c, _ = s.accept(); n, t0 = 0, None
    while True:
        b = c.recv(1 << 20)
        if not b: break
        t0 = t0 or time.monotonic(); n += len(b)
    print(n / (time.monotonic() - t0))
else:
    s = socket.create_connection((sys.argv[2], int(sys.argv[3]))); buf = b"x" * (1 << 20); t = time.monotonic()
    while time.monotonic() - t < float(sys.argv[4]): s.sendall(buf)
    s.close()
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def down(nodes: int) -> None:
    for i in range(nodes):
        subprocess.run(["ip", "netns", "delete", f"{PREFIX}{i}"], capture_output=True)
    subprocess.run(["ip", "link", "delete", f"{PREFIX}br"], capture_output=True)


def flows(nodes: int, rate_bps: float, bucket: int, seconds: float) -> list[float]:
    """Bytes per second each of ``nodes`` ring flows carried over links shaped at ``rate_bps``."""
    down(32)
    sh("ip", "link", "add", f"{PREFIX}br", "type", "bridge")
    sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", f"{PREFIX}br")
    sh("ip", "link", "set", f"{PREFIX}br", "up")
    try:
        for i in range(nodes):
            ns, host, inner = f"{PREFIX}{i}", f"{PREFIX}h{i}", f"{PREFIX}n{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", host, "master", f"{PREFIX}br")
            sh("ip", "link", "set", host, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{10 + i}/24", "dev", inner)
            sh("ip", "-n", ns, "link", "set", inner, "up")
            for dev, where in ((host, []), (inner, ["ip", "netns", "exec", ns])):
                sh(*where, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rates.tc(rate_bps),
                   "burst", str(bucket), "latency", "100ms")
        receivers = [subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}{i}", sys.executable, "-c", FLOW, "recv",
                                       str(PORT)], stdout=subprocess.PIPE, text=True) for i in range(nodes)]
        time.sleep(1.0)
        senders = [subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}{i}", sys.executable, "-c", FLOW, "send",
                                     f"{SUBNET}.{10 + (i + 1) % nodes}", str(PORT), str(seconds)])
                   for i in range(nodes)]
        for p in senders:
            p.wait(timeout=seconds + 30)
        return [float(p.communicate(timeout=30)[0]) for p in receivers]
    finally:
        down(nodes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", default="4,8,16")
    parser.add_argument("--rates", default="100mbit,200mbit,400mbit")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows = []
    for rate in args.rates.split(","):
        bps = rates.parse(rate, "--rates")
        for n in (int(x) for x in args.nodes.split(",")):
            for name, bucket_of in BUCKETS.items():
                got = flows(n, bps, bucket_of(bps), args.seconds)
                share = [8 * g / bps for g in got]
                rows.append({"rate": rate, "nodes": n, "bucket": name, "bucket_bytes": bucket_of(bps),
                             "mean_share": statistics.fmean(share), "min_share": min(share)})
                print(f"{rate:>8s} {n:3d} flows  {name:28s} each {statistics.fmean(share):.2f} of the rate "
                      f"(min {min(share):.2f})", flush=True)
    out = ROOT / "bench/results"
    meta = {"command": "sudo .venv/bin/python bench/link_flows.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "kernel": platform.release(), "seconds": args.seconds}
    (out / "link-flows.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    lines = ["# What one shaped link carries while every link of the emulated cluster carries a flow", "",
             f"`{meta['command']}` on {meta['date']} (kernel {meta['kernel']}): N namespaces on a bridge, tbf on both "
             f"ends of every veth, N TCP flows in a ring for {args.seconds:g} s; each flow's rate over the link's.", "",
             "| rate | flows | tbf bucket | bytes | each flow (mean) | slowest flow |", "|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['rate']} | {r['nodes']} | {r['bucket']} | {r['bucket_bytes']:,} | {r['mean_share']:.2f} | "
              f"{r['min_share']:.2f} |" for r in rows]
    (out / "link-flows.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
