"""What the emulated cluster's shaped links carry when many carry at once, on the cluster's own links
(``Emulated.make_links``: the namespaces, veths and tbf of orchestrator/running/emulated.py; no Ray):

- ``flows``: N TCP flows in a ring (node i sends to node i+1, as a ring all-reduce does), each for a few
  seconds; the rate each got over the link's, for the tbf bucket the cluster uses (``emulated.tbf_bucket_bytes``)
  and for the one it used before (one 64 KiB GSO packet, or 2 ms at the rate).
- ``gloo``: a gloo all-reduce of one message over N ranks, one a node, with TCP autocorking off (as the
  cluster sets it in every node's namespace) and on (the kernel's default); its median time over the ring's
  wire time W = 2(n-1)/n S / rate. With autocorking on, a message of one GSO packet and a tail waited behind
  the previous message's tokens.
- ``idle``: the same all-reduce after the link has idled (a sleep before each timed call, as the compute
  leaves it in a training step) against back to back (as the microbenchmark times it): what the idle link's
  tbf bucket takes off the call, as link time and as bytes at the call's bus bandwidth -- the credit the
  physical model fits to the timed steps (orchestrator/modelling/physics.py, ``credit_bytes``).

    sudo .venv/bin/python bench/link_flows.py [--nodes 4,8,16] [--rates 100mbit,200mbit,400mbit] [--seconds 4]
        [--gloo-nodes 8,16] [--gloo-rate 400mbit] [--gloo-kib 1024,2048]
        [--idle-nodes 2,8] [--idle-rate 200mbit] [--idle-kib 256,1024] [--idle-ms 100] [--only flows|gloo|idle]

Writes bench/results/link-flows.{json,md}; asserts nothing. Root (namespaces and tc).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.job import rates  # noqa: E402
from orchestrator.running import emulated  # noqa: E402

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
# rank world master nbytes iterations idle_s: prints the median of the timed all-reduces (seconds) on rank 0,
# each after idle_s of sleep
GLOO = r"""
import statistics, sys, time, datetime
import torch, torch.distributed as dist
rank, world, master, nbytes, iters = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
idle = float(sys.argv[6])
dist.init_process_group("gloo", init_method=f"tcp://{master}", rank=rank, world_size=world,
                        timeout=datetime.timedelta(seconds=120))
x = torch.ones(nbytes // 4)
for _ in range(3):
    dist.all_reduce(x)
took = []
for _ in range(iters):
    time.sleep(idle); dist.barrier(); t = time.perf_counter(); dist.all_reduce(x); took.append(time.perf_counter() - t)
if rank == 0:
    print(statistics.median(took))
dist.destroy_process_group()
"""


def links(nodes: int, rate_bps: float, bucket=None) -> emulated.Emulated:
    cluster = emulated.Emulated(Path(tempfile.mkdtemp(prefix="link-flows-")))
    cluster.make_links(nodes, rate_bps, share_cores=True, progress=lambda *_: None)
    if bucket is not None:
        cluster.shape(rate_bps, bucket)
    return cluster


def in_node(node: dict, *command: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", node["namespace"], *command], **kwargs)


def flows(nodes: int, rate_bps: float, bucket, seconds: float) -> list[float]:
    """Bytes per second each of ``nodes`` ring flows carried over links shaped at ``rate_bps``."""
    cluster = links(nodes, rate_bps, bucket)
    try:
        ring = cluster.data["nodes"]
        receivers = [in_node(n, sys.executable, "-c", FLOW, "recv", str(PORT), stdout=subprocess.PIPE, text=True)
                     for n in ring]
        time.sleep(1.0)
        senders = [in_node(n, sys.executable, "-c", FLOW, "send", ring[(i + 1) % nodes]["ip"], str(PORT),
                           str(seconds)) for i, n in enumerate(ring)]
        for p in senders:
            p.wait(timeout=seconds + 30)
        return [float(p.communicate(timeout=30)[0]) for p in receivers]
    finally:
        cluster.down(progress=lambda *_: None)


def gloo(nodes: int, rate_bps: float, nbytes: int, autocork: bool, iterations: int = 10, idle_s: float = 0.0) -> float:
    """The median time of a gloo all-reduce of ``nbytes`` over ``nodes`` ranks, one a node, each call after
    ``idle_s`` of the link idle."""
    cluster = links(nodes, rate_bps)
    try:
        ring = cluster.data["nodes"]
        if autocork:
            for n in ring:
                subprocess.run(["ip", "netns", "exec", n["namespace"], "sh", "-c",
                                "echo 1 > /proc/sys/net/ipv4/tcp_autocorking"], check=True)
        master = f"{ring[0]['ip']}:{PORT + 1}"
        ranks = [in_node(n, "env", f"GLOO_SOCKET_IFNAME={n['ns_if']}", sys.executable, "-c", GLOO, str(i),
                         str(nodes), master, str(nbytes), str(iterations), str(idle_s), stdout=subprocess.PIPE,
                         text=True)
                 for i, n in enumerate(ring)]
        outs = [p.communicate(timeout=600)[0] for p in ranks]
        if any(p.returncode for p in ranks):
            raise RuntimeError(f"a gloo rank failed: exit codes {[p.returncode for p in ranks]}")
        return float(outs[0])
    finally:
        cluster.down(progress=lambda *_: None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", default="4,8,16")
    parser.add_argument("--rates", default="100mbit,200mbit,400mbit")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--gloo-nodes", default="8,16")
    parser.add_argument("--gloo-rate", default="400mbit")
    parser.add_argument("--gloo-kib", default="1024,2048")
    parser.add_argument("--idle-nodes", default="2,8")
    parser.add_argument("--idle-rate", default="200mbit")
    parser.add_argument("--idle-kib", default="256,1024")
    parser.add_argument("--idle-ms", type=float, default=100.0)
    parser.add_argument("--only", choices=("flows", "gloo", "idle"))
    args = parser.parse_args()
    rows, gloo_rows, idle_rows = [], [], []
    if args.only in (None, "flows"):
        for rate in args.rates.split(","):
            bps = rates.parse(rate, "--rates")
            for n in (int(x) for x in args.nodes.split(",")):
                for name, bucket_of in BUCKETS.items():
                    got = flows(n, bps, bucket_of, args.seconds)
                    share = [8 * g / bps for g in got]
                    rows.append({"rate": rate, "nodes": n, "bucket": name, "bucket_bytes": bucket_of(bps),
                                 "mean_share": statistics.fmean(share), "min_share": min(share)})
                    print(f"{rate:>8s} {n:3d} flows  {name:28s} each {statistics.fmean(share):.2f} of the rate "
                          f"(min {min(share):.2f})", flush=True)
    if args.only in (None, "gloo"):
        bps = rates.parse(args.gloo_rate, "--gloo-rate")
        for n in (int(x) for x in args.gloo_nodes.split(",")):
            for kib in (int(x) for x in args.gloo_kib.split(",")):
                wire = 2 * (n - 1) / n * kib * 1024 * 8 / bps
                row = {"rate": args.gloo_rate, "nodes": n, "bytes": kib * 1024, "wire_ms": 1e3 * wire}
                for autocork in (False, True):
                    took = gloo(n, bps, kib * 1024, autocork)
                    row["autocork_on_ms" if autocork else "autocork_off_ms"] = 1e3 * took
                gloo_rows.append(row)
                print(f"gloo {n:3d} ranks {kib:5d} KiB at {args.gloo_rate}: autocorking off "
                      f"{row['autocork_off_ms']:.1f} ms, on {row['autocork_on_ms']:.1f} ms (wire {row['wire_ms']:.1f} ms)",
                      flush=True)
    if args.only in (None, "idle"):
        bps = rates.parse(args.idle_rate, "--idle-rate")
        for n in (int(x) for x in args.idle_nodes.split(",")):
            for kib in (int(x) for x in args.idle_kib.split(",")):
                wire = 2 * (n - 1) / n * kib * 1024 * 8 / bps
                busy = gloo(n, bps, kib * 1024, autocork=False)
                idle = gloo(n, bps, kib * 1024, autocork=False, idle_s=args.idle_ms / 1e3)
                bus = 2 * (n - 1) / n * kib * 1024 / busy  # the call's bus bandwidth back to back, bytes/s
                idle_rows.append({"rate": args.idle_rate, "nodes": n, "bytes": kib * 1024, "wire_ms": 1e3 * wire,
                                  "idle_ms": args.idle_ms, "back_to_back_ms": 1e3 * busy, "after_idle_ms": 1e3 * idle,
                                  "credit_ms": 1e3 * (busy - idle), "credit_bytes": (busy - idle) * bus,
                                  "tbf_bucket_bytes": emulated.tbf_bucket_bytes(bps)})
                print(f"gloo {n:3d} ranks {kib:5d} KiB at {args.idle_rate}: back to back {1e3 * busy:.1f} ms, after "
                      f"{args.idle_ms:g} ms idle {1e3 * idle:.1f} ms: {(busy - idle) * bus / 1024:.0f} KiB of credit "
                      f"(tbf bucket {emulated.tbf_bucket_bytes(bps) / 1024:.0f} KiB)", flush=True)
    out = ROOT / "bench/results"
    meta = {"command": "sudo .venv/bin/python bench/link_flows.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "kernel": platform.release(), "seconds": args.seconds}
    previous = json.loads((out / "link-flows.json").read_text()) if (out / "link-flows.json").exists() else {}
    if args.only:  # one part rerun: the others' results kept as they were measured
        rows, gloo_rows = rows or previous.get("rows", []), gloo_rows or previous.get("gloo", [])
        idle_rows = idle_rows or previous.get("idle", [])
    if args.only and previous:
        meta["others"] = {k: previous.get(k) for k in ("command", "date")}
    (out / "link-flows.json").write_text(json.dumps({**meta, "rows": rows, "gloo": gloo_rows, "idle": idle_rows},
                                                    indent=2) + "\n")
    lines = ["# What the emulated cluster's shaped links carry while every link carries", "",
             f"`{meta['command']}` on {meta['date']} (kernel {meta['kernel']}), on the cluster's own links "
             "(`Emulated.make_links`: namespaces on a bridge, tbf on both ends of every veth), no Ray."
             + (f" The other parts as `{previous.get('command')}` measured them on {previous.get('date')}."
                if args.only and previous else "")]
    if rows:
        lines += ["", f"N TCP flows in a ring for {args.seconds:g} s; each flow's rate over the link's.", "",
                  "| rate | flows | tbf bucket | bytes | each flow (mean) | slowest flow |",
                  "|---|---:|---|---:|---:|---:|"]
        lines += [f"| {r['rate']} | {r['nodes']} | {r['bucket']} | {r['bucket_bytes']:,} | {r['mean_share']:.2f} | "
                  f"{r['min_share']:.2f} |" for r in rows]
    if gloo_rows:
        lines += ["", "A gloo all-reduce of one message, one rank a node, median of 10; W = 2(n-1)/n S / rate.", "",
                  "| rate | ranks | message | W (ms) | autocorking off (ms) | on (ms) | on / off |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['rate']} | {r['nodes']} | {r['bytes'] // 1024} KiB | {r['wire_ms']:.1f} | "
                  f"{r['autocork_off_ms']:.1f} | {r['autocork_on_ms']:.1f} | "
                  f"{r['autocork_on_ms'] / r['autocork_off_ms']:.2f} |" for r in gloo_rows]
    if idle_rows:
        lines += ["", f"The same all-reduce (autocorking off) after {args.idle_ms:g} ms of the link idle against back to "
                  "back, median of 10: what the idle link's tbf bucket takes off the call, as link time and as bytes "
                  "at the call's bus bandwidth back to back (the credit the physical model fits to the timed steps).", "",
                  "| rate | ranks | message | W (ms) | back to back (ms) | after idle (ms) | credit (ms) | credit (KiB) | tbf bucket (KiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['rate']} | {r['nodes']} | {r['bytes'] // 1024} KiB | {r['wire_ms']:.1f} | "
                  f"{r['back_to_back_ms']:.1f} | {r['after_idle_ms']:.1f} | {r['credit_ms']:.1f} | "
                  f"{r['credit_bytes'] / 1024:.0f} | {r['tbf_bucket_bytes'] / 1024:.0f} |" for r in idle_rows]
    (out / "link-flows.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
