"""Pure: a physical model of a data-parallel step, from the measured breakdown (orchestrator/measuring/breakdown.py) and
the trial's all-reduce (orchestrator/measuring/collective.py), that predicts unmeasured worker counts, link rates and
node layouts. Every formula is a function here with a unit test on hand-made numbers.

A step of N workers (times per step; S the gradient's bytes; b_N the per-worker batch):

    step(N)   = base(N) + wait(N) + exposed(N)

    base(N)   = k1 L(b_N) r(N)         the step without the all-reduce. L(b) = c0 + c1 b fitted to the measured
                                       local steps (input + compute, under no_sync) against the batch; r(N) the
                                       measured local step over L at each measured count, interpolated between
                                       them and held at the nearest one outside (cores shared, a device's
                                       contention: what was measured, not guessed); k1 = the 1-worker timed
                                       step over its local step (the framework's own cost of a step)
    wait(N)   = sigma E[max of N]      the slowest of N ranks: sigma the ranks' spread of one step, relative to
                                       the local step: within a rank (its steps' standard deviation) and between
                                       ranks (the measured wait over E[max of n] at the trial's n), in
                                       quadrature; E[max of N] the expected maximum of N standard normal draws
                                       (0 at one worker)
    exposed(N) the all-reduce calls the step makes, each a call of the recorded backend's algorithm, laid
               against the backward pass: DDP's reducer all-reduces its buckets (the recorded sizes, else DDP's
               rule: the first 1 MiB, then 25 MiB) one after another, each once the backward has produced its
               bytes; Horovod fuses up to 64 MiB; TensorFlow's MultiWorkerMirrored packs the gradient into one
               all-reduce after the backward. exposed = what runs past the backward's end, with the calls
               taking i >= 1 times their time alone (the compute's contention for the host) less the link
               time of c bytes that a link idle through the compute sends at once, ahead of its rate (a
               token bucket c deep, refilled while the link idles: a shaped link's, as tbf has; the
               microbenchmark's back-to-back calls never find it). i and c are fitted together to the
               timed steps of the measured counts, c kept only where it beats the steps' noise; the credit
               shortens only the link time (a pipelined call's hops are then less covered) and never a call
               below its CPU; c stays bytes under a what-if rate. A
               backend may run more than one call at a time (``IN_FLIGHT``: ProcessGroupGloo hands its
               collectives to Options.threads worker threads, 2 with one interface, so two of DDP's buckets are
               all-reduced at once; NCCL's stream, Horovod's background thread and TensorFlow's one pack run one):
               calls in flight pay their latency side by side and their bytes one after another on the link.

The host's cores (where the workload measured each rank's process CPU per step and the cores it may run
on), k the ranks per core of the busiest host: each hop of the algorithm waits for its rank to get a core,
behind half the other k-1 ranks of that core on average (round robin, the message arriving at a random point
of the turn), so it takes q(k) = (1 + max(1, k)) / 2 times its latency (a_hop is fitted against hops(n) q(k)
of each measured trial); a
call takes at least k times its CPU work (processor sharing; the all-reduce's CPU per step over the 1-worker
step's, u_b 2(N-1)/N + u_h 2(N-1): the bytes a rank moves and the messages it sends, a hop of each call, by
non-negative least squares); the local step at least k times a rank's CPU
without the all-reduce (the 1-worker trials'), the step at least k times a rank's whole CPU. Where every measured
rank ran on one host (the emulated cluster, whatever layout a what-if names for its nodes) every predicted rank
does; else a node's workers share its cores. With a core or
more a rank neither binds.

One call of n ranks, m per node over k nodes, by algorithm (``call_s``):

    ring          a0 + 2(n-1) a_hop + 2(n-1)/n S / B           a flat ring (TensorFlow's RING, Horovod): as
                                                               fast as its slowest link
                  a0 + max(p/2 2(n-1) a_hop + W/2, W)          gloo's ring, W = 2(n-1)/n S / B: a chunk's p
                                                               segments (2 up to 2n MiB) two in flight, one
                                                               sent while the other is reduced, so the bytes
                                                               run under the latency
    tree          a0 + 2 ceil(log2 k) a_inter                  NCCL's tree (NCCL only): a double binary
                     + 2(m-1) a_intra + 2 S / B_inter          tree over the nodes, a chain inside each
    hierarchical  a0 + 2(m-1) a_intra + 2(m-1)/m S / B_intra   reduce-scatter and all-gather in the node
                     + 2(k-1) a_inter + 2(k-1)/k S / B_inter   a ring across nodes: Horovod's opt-in
                                                               HOROVOD_HIERARCHICAL_ALLREDUCE, no
                                                               recorded backend's default

The backend picks which (``ALGORITHMS``): torch's ProcessGroupGloo calls gloo's ring all-reduce (no
algorithm is named, so gloo takes its ring); TensorFlow's collective ops over gRPC run a ring; NCCL's tuner
takes the faster of its ring (whose inter-node links carry 2(n-1)/n S, as nccl-tests' bus bandwidth says)
and its tree. No prediction of a ring-only backend can
fall when one worker is added unless a measured term (r(N), the wait) says so.

Link classes: a trial whose ranks ran on one node measured the intra-node link, one across nodes the
inter-node link; each class keeps its own bus bandwidth B (the mean of its trials' collective fits) and
latency alpha(n) = a0 + hops(n) a_hop (non-negative least squares over the class's measured counts; with one
count all of it per hop, the conservative split). A what-if link rate becomes a bus bandwidth through the
class's measured efficiency (B over the rate it ran over, ``measured_link_bps``), else the rate itself.

The band is noise, not model error: multiplicative, exp(+-1.28 sigma_N) about the prediction (10th to 90th
percentile), sigma_N from the repeats' spread of the throughput and the collective's own spread times the
all-reduce's share of the step, widened by 1 + ln(N / the largest measured count) beyond it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from orchestrator.measuring import collective as coll

Z90 = 1.2816
"""The standard normal's 90th percentile: the band's half-width in sigmas."""
REPEAT_FLOOR = 0.02
MIB = 1 << 20
DDP_FIRST_BUCKET = 1 * MIB
DDP_BUCKET = 25 * MIB
HOROVOD_FUSION = 64 * MIB
BACKWARD_SHARE = 2 / 3
"""The backward's share of the compute where the framework did not time it apart (TensorFlow's step)."""
INFLATION_GRID = np.round(np.arange(1.0, 4.0001, 0.01), 4)
"""The calls' in-step factor i the fit chooses from (the compute's contention can only slow a call)."""
CREDIT_GRID = np.arange(0, 2 * MIB + 1, 4096)
"""The idle link's credit c (bytes) the fit chooses from; at its top the fit says so."""

IN_FLIGHT = {"gloo": 2}
"""All-reduce calls a backend runs at once (ProcessGroupGloo's default Options.threads); others: one."""

ALGORITHMS = {"gloo": ("ring",), "horovod": ("ring",), "ring": ("ring",), "grpc": ("ring",), "auto": ("ring",),
              "nccl": ("ring", "tree")}
"""The all-reduce algorithms each recorded backend runs (lower case; unknown backends: the ring)."""


def algorithms(backend: Optional[str]) -> tuple[str, ...]:
    return ALGORITHMS.get((backend or "").lower(), ("ring",))


def in_flight(backend: Optional[str]) -> int:
    return IN_FLIGHT.get((backend or "").lower(), 1)


@dataclass(frozen=True)
class Layout:
    """Where the workers are and what joins them. None: as measured."""

    workers_per_node: Optional[int] = None
    inter_node_bps: Optional[float] = None
    """The link rate between nodes, bits per second."""
    intra_node_bps: Optional[float] = None
    measured_link_bps: Optional[float] = None
    """The link rate the sweep's all-reduce ran over, to carry its efficiency (busbw / rate) to other rates."""

    @property
    def what_if(self) -> bool:
        return any(v is not None for v in (self.workers_per_node, self.inter_node_bps, self.intra_node_bps))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Link:
    """One link class's all-reduce terms: a call's fixed cost, each hop's latency, the bus bandwidth."""

    a0_s: float
    hop_s: float
    bus_bytes_per_s: float

    def to_dict(self) -> dict:
        return {"a0_us": 1e6 * self.a0_s, "hop_us": 1e6 * self.hop_s, "bus_gb_per_s": self.bus_bytes_per_s / 1e9}


# --- the collective's algorithms ---
def ring_hops(n: int) -> int:
    return 2 * (n - 1)


def tree_hops(n: int) -> int:
    return 2 * math.ceil(math.log2(n)) if n > 1 else 0


@dataclass(frozen=True)
class Call:
    """One all-reduce call's terms, seconds: ``fixed_s`` its own cost (a0, never hidden), ``hops_s`` the hops'
    latency, ``wire_s`` its link time W; ``pipelined`` (gloo's two segments in flight) the bytes of one
    segment cover the other's hops, so only max(0, hops - W/2) of them is exposed; ``cpu_s`` the least time
    its host's cores allow (k times a rank's CPU work of it, with k ranks a core; 0: a core each)."""

    fixed_s: float
    hops_s: float
    wire_s: float
    pipelined: bool = False
    cpu_s: float = 0.0

    def latency_s(self, wire_s: Optional[float] = None) -> float:
        """The latency left exposed with ``wire_s`` of link time (the call's own, unless a credit cut it)."""
        return coll.exposed_latency_s(self.fixed_s, self.hops_s, self.wire_s if wire_s is None else wire_s,
                                      self.pipelined)

    def alone_s(self) -> float:
        """The call alone: its latency and link time, or its CPU, whichever is longer."""
        return max(self.latency_s() + self.wire_s, self.cpu_s)

    def scaled(self, factor: float) -> "Call":
        return replace(self, fixed_s=factor * self.fixed_s, hops_s=factor * self.hops_s,
                       wire_s=factor * self.wire_s, cpu_s=factor * self.cpu_s)


def as_call(call) -> Call:
    """A ``Call`` from a call, a (latency, link time) pair, or a call's seconds (all link time)."""
    if isinstance(call, Call):
        return call
    if isinstance(call, (tuple, list)):
        return Call(float(call[0]), 0.0, float(call[1]))
    return Call(0.0, 0.0, float(call))


def ring_call(nbytes: float, n: int, link: Link, pipelined: bool = False) -> Call:
    """One ring all-reduce: a0, 2(n-1) a_hop, and W = 2(n-1)/n S / B; ``pipelined`` (gloo), a chunk's p
    segments (2 up to 2n MiB, ``coll.segments_per_rank``) pay their hops two at a time: p/2 2(n-1) a_hop."""
    if n <= 1:
        return Call(0.0, 0.0, 0.0)
    hops = ring_hops(n) * link.hop_s * (coll.segments_per_rank(nbytes, n) / 2 if pipelined else 1.0)
    return Call(link.a0_s, hops, coll.bus_factor(n) * nbytes / link.bus_bytes_per_s, pipelined)


def ring_parts(nbytes: float, n: int, link: Link, pipelined: bool = False) -> tuple[float, float]:
    """(exposed latency, link time) of one ring all-reduce (``ring_call``): a0 + 2(n-1) a_hop, W; pipelined,
    a0 + max(0, p/2 2(n-1) a_hop - W/2) (the call: a0 + max(hops + W/2, W))."""
    call = ring_call(nbytes, n, link, pipelined)
    return call.latency_s(), call.wire_s


def tree_parts(nbytes: float, n: int, link: Link, per_node: int = 1, intra: Optional[Link] = None) -> tuple[float, float]:
    """NCCL's tree over ``n`` ranks, ``per_node`` to a node: a double binary tree over the nodes (``link``
    between them), a chain through each node's ranks (``intra``, else ``link``); the bytes twice over the
    link between nodes (within one node, the node's own)."""
    if n <= 1:
        return 0.0, 0.0
    per_node = max(1, min(per_node, n))
    nodes, inside = math.ceil(n / per_node), intra or link
    latency = (link if nodes > 1 else inside).a0_s + tree_hops(nodes) * link.hop_s + 2 * (per_node - 1) * inside.hop_s
    return latency, 2 * nbytes / (link if nodes > 1 else inside).bus_bytes_per_s


def hierarchical_parts(nbytes: float, per_node: int, nodes: int, intra: Link, inter: Link) -> tuple[float, float]:
    """Reduce-scatter inside each node, a ring across nodes (the node's m rings of S/m share its link), then an
    all-gather inside the node."""
    m, k = per_node, nodes
    if m * k <= 1:
        return 0.0, 0.0
    latency, wire = inter.a0_s, 0.0
    if m > 1:
        latency += ring_hops(m) * intra.hop_s
        wire += coll.bus_factor(m) * nbytes / intra.bus_bytes_per_s
    if k > 1:
        latency += ring_hops(k) * inter.hop_s
        wire += coll.bus_factor(k) * nbytes / inter.bus_bytes_per_s
    return latency, wire


def ring_s(nbytes: float, n: int, link: Link, pipelined: bool = False) -> float:
    return sum(ring_parts(nbytes, n, link, pipelined))


def tree_s(nbytes: float, n: int, link: Link, per_node: int = 1, intra: Optional[Link] = None) -> float:
    return sum(tree_parts(nbytes, n, link, per_node, intra))


def hierarchical_s(nbytes: float, per_node: int, nodes: int, intra: Link, inter: Link) -> float:
    return sum(hierarchical_parts(nbytes, per_node, nodes, intra, inter))


def core_queue(ranks_per_core: Optional[float]) -> float:
    """q(k) = (1 + max(1, k)) / 2: what a hop's latency is multiplied by where k ranks share a core. The
    receiving rank runs once the ranks ahead of it on its core have had their turn; with the message arriving
    at a random point of the round, half of the other k - 1 are ahead on average. 1 with a core a rank."""
    return (1.0 + max(1.0, ranks_per_core or 1.0)) / 2


def contended(link: Link, ranks_per_core: float) -> Link:
    """A link whose every hop waits for its rank to get a core (``core_queue``; k <= 1: a core each, as
    measured)."""
    return replace(link, hop_s=link.hop_s * core_queue(ranks_per_core))


def call(nbytes: float, n: int, per_node: int, intra: Link, inter: Link, backend: Optional[str],
         ranks_per_core: float = 0.0) -> Call:
    """One all-reduce call of ``nbytes`` over ``n`` ranks, ``per_node`` to a node, by the backend's fastest
    algorithm. Across nodes a flat ring or tree is as fast as its slowest link, the inter-node one."""
    if n <= 1:
        return Call(0.0, 0.0, 0.0)
    per_node = max(1, min(per_node, n))
    nodes = math.ceil(n / per_node)
    intra, inter = contended(intra, ranks_per_core), contended(inter, ranks_per_core)
    link = inter if nodes > 1 else intra
    options = []
    for algorithm in algorithms(backend):
        if algorithm == "ring":
            options.append(ring_call(nbytes, n, link, coll.pipelined(backend)))
        elif algorithm == "tree":
            options.append(as_call(tree_parts(nbytes, n, inter, per_node, intra)))
        elif algorithm == "hierarchical" and nodes > 1 and per_node > 1:
            options.append(as_call(hierarchical_parts(nbytes, per_node, nodes, intra, inter)))
    return min(options, key=Call.alone_s)


def call_parts(nbytes: float, n: int, per_node: int, intra: Link, inter: Link, backend: Optional[str],
               ranks_per_core: float = 0.0) -> tuple[float, float]:
    """(exposed latency, link time) of ``call``."""
    c = call(nbytes, n, per_node, intra, inter, backend, ranks_per_core)
    return c.latency_s(), c.wire_s


def call_s(nbytes: float, n: int, per_node: int, intra: Link, inter: Link, backend: Optional[str],
           ranks_per_core: float = 0.0) -> float:
    """One all-reduce call's time alone."""
    return call(nbytes, n, per_node, intra, inter, backend, ranks_per_core).alone_s()


def buckets(gradient_bytes: int, framework: str, recorded: Optional[list[int]] = None) -> list[int]:
    """The all-reduce calls of one step, in the order they are made: DDP's recorded buckets (where they add up
    to the gradient), else its rule (the first bucket up to 1 MiB, the rest up to 25 MiB); Horovod's fusion
    buffer of 64 MiB; TensorFlow's one pack."""
    size = int(gradient_bytes)
    if recorded and abs(sum(recorded) - size) <= 0.01 * size:
        return [int(b) for b in recorded]
    if framework == "tensorflow":
        return [size]
    if framework in ("horovod", "tensorflow-horovod"):
        return [HOROVOD_FUSION] * (size // HOROVOD_FUSION) + ([size % HOROVOD_FUSION] if size % HOROVOD_FUSION else [])
    out, left = [], size
    cap = DDP_FIRST_BUCKET
    while left > 0:
        out.append(min(cap, left))
        left -= out[-1]
        cap = DDP_BUCKET
    return out


def exposed_s(calls: list, sizes: list[int], backward_s: float, overlap: bool, in_flight: int = 1,
              credit_s: float = 0.0, idle_s: float = math.inf) -> float:
    """The all-reduce time past the backward's end. ``calls[i]`` is bucket i's all-reduce (a ``Call``, a
    (latency, link time) pair or seconds, ``as_call``); with ``overlap`` bucket i starts once the backward has
    produced its bytes (in proportion to the bytes) and one of the backend's ``in_flight`` calls has ended;
    calls in flight pay their latency side by side and their link time one after another (one link). Without
    ``overlap`` the calls start after the backward. With one call in flight they run one after another: their
    sum.

    ``credit_s``: the link time an idle link sends at once (a token bucket that deep, refilled a second a
    second while the link idles, ``idle_s`` before the backward began: the step's other parts since the
    previous step's calls): a call's link time less the credit it finds, its exposed latency as that shorter
    link time leaves it (a pipelined call's hops are covered by less), and never below its CPU (``cpu_s``:
    the link idles, and refills, once the call's bytes are sent)."""
    if not calls:
        return 0.0
    slots = max(1, int(in_flight))
    total, done, link_free, ends, tokens = float(sum(sizes)), 0.0, -max(0.0, idle_s), [], 0.0
    for i, (c, size) in enumerate(zip(map(as_call, calls), sizes)):
        done += size
        ready = backward_s * done / total if overlap else backward_s
        start = max(ready, ends[i - slots] if i >= slots else 0.0)
        bucket, used = max(0.0, credit_s), 0.0
        for _ in range(8):  # the more credit used, the later a pipelined call sends, the more it refilled
            sending = max(start + c.latency_s(c.wire_s - used), link_free)
            more = min(min(bucket, tokens + sending - link_free), c.wire_s)
            if abs(more - used) <= 1e-12:
                break
            used = more
        tokens = min(bucket, tokens + sending - link_free) - used
        link_free = sending + c.wire_s - used
        ends.append(max(link_free, start + c.cpu_s))
    return max(0.0, max(ends) - backward_s)


@lru_cache(maxsize=None)
def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normal draws] (0 for one), by numerical integration."""
    if n <= 1:
        return 0.0
    x = np.linspace(-8.0, 8.0, 8001)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    integrate = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it
    return float(integrate(x * n * pdf * cdf ** (n - 1), x))


def fit_latency(points: list[tuple], hops: Callable[[int], int] = ring_hops) -> tuple[float, float]:
    """(a0, a_hop) >= 0 from (n, alpha(n)[, k]) with alpha = a0 + hops(n) q(k) a_hop, least squares (k: the
    trial's ranks per core, ``core_queue``); with one count (or hops that do not vary) all of it per hop."""
    weight = [hops(p[0]) * core_queue(p[2] if len(p) > 2 else None) for p in points]
    if len({p[0] for p in points}) < 2 or np.ptp(weight) == 0:
        return 0.0, statistics.fmean(p[1] for p in points) / max(statistics.fmean(weight), 1)
    return nonnegative_line(weight, [p[1] for p in points])


def fit_link(trials: list["Trial"]) -> Optional[Link]:
    """A link class's terms from its trials' collectives (None without any)."""
    measured = [t for t in trials if t.collective is not None]
    if not measured:
        return None
    a0, hop = fit_latency([(t.workers, t.collective.alpha_s, t.ranks_per_core) for t in measured])
    return Link(a0_s=a0, hop_s=hop, bus_bytes_per_s=statistics.fmean(t.collective.bus_bytes_per_s for t in measured))


def linear_batch(bs: list[float], ys: list[float]) -> tuple[float, float]:
    """L(b) = c0 + c1 b, both non-negative; proportional through the origin with one b."""
    if len(set(bs)) < 2:
        return 0.0, float(np.mean(ys) / np.mean(bs))
    return nonnegative_line(bs, ys)


def nonnegative_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of y = c0 + c1 x by least squares, both kept non-negative: through the origin where
    the intercept would be negative, flat where the slope would."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    c1, c0 = np.polyfit(x, y, 1)
    if c0 < 0:
        return 0.0, float((x * y).sum() / (x * x).sum())
    if c1 < 0:
        return float(y.mean()), 0.0
    return float(c0), float(c1)


def nonnegative_least_squares(rows: list[list[float]], ys: list[float]) -> tuple[float, ...]:
    """x >= 0 minimising |A x - y| for a few columns: the unconstrained solution where it is non-negative, else
    the best over the subsets of columns (each solved the same way; a handful of columns, so exhaustive)."""
    a, y = np.asarray(rows, float), np.asarray(ys, float)
    columns = a.shape[1]
    best, best_error = np.zeros(columns), float((y ** 2).sum())
    for mask in range(1, 1 << columns):
        keep = [j for j in range(columns) if mask >> j & 1]
        x, *_ = np.linalg.lstsq(a[:, keep], y, rcond=None)
        if (x < 0).any():
            continue
        full = np.zeros(columns)
        full[keep] = x
        error = float(((a @ full - y) ** 2).sum())
        if error < best_error - 1e-15:
            best, best_error = full, error
    return tuple(float(v) for v in best)


def held_ratio(counts: list[int], ratios: list[float], n: int) -> float:
    """A measured ratio at worker count n: interpolated between measured counts, the nearest one's outside."""
    return float(np.interp(n, counts, ratios))


# --- what the model reads from one trial ---
@dataclass(frozen=True)
class Trial:
    workers: int
    nodes: int
    per_worker_batch: float
    units_per_step: float
    """Global batch for samples/s; 1 for steps/s."""
    throughput: float
    local_ms: float
    """Input + compute of a step without the all-reduce (the breakdown's local blocks)."""
    sigma_ms: float
    """One step's spread on one rank: within the rank (step to step) and between ranks, in quadrature."""
    backward_ms: Optional[float]
    gradient_bytes: int
    bucket_bytes: Optional[tuple]
    backend: Optional[str]
    collective: Optional[coll.Collective]
    cpu_ms: Optional[float] = None
    """Each rank's process CPU per timed step (mean over ranks), where the workload measured it."""
    ranks_per_core: Optional[float] = None
    """The busiest host's ranks over the cores they could run on."""
    one_host: bool = False
    """Every rank ran on one host (the emulated cluster; one node)."""
    host_cores: Optional[int] = None

    @property
    def step_ms(self) -> float:
        return 1e3 * self.units_per_step / self.throughput

    @property
    def per_node(self) -> int:
        return math.ceil(self.workers / self.nodes)


def from_record(record, metric: str, throughput: float) -> Optional[Trial]:
    """A Trial from a TrialRecord with a breakdown of its step (None without one)."""
    b = record.get("breakdown") or {}
    if b.get("compute_ms") is None or throughput <= 0 or metric not in ("samples_per_sec", "steps_per_sec"):
        return None
    size = b.get("gradient_bytes")
    if not size:
        return None
    units = (record.get("global_batch") or 0) if metric == "samples_per_sec" else 1
    if not units:
        return None
    # The ranks' spread: between them, the sigma whose expected maximum of n gives the measured wait (the mean
    # over ranks of the slowest's local step minus its own); within each, its own steps' standard deviation.
    n = record.workers
    between = float(b.get("wait_ms") or 0.0) / expected_max_normal(n) if n > 1 else 0.0
    within = float(b.get("local_step_sd_ms") or 0.0)
    result = coll.from_record(b.get("collective"), record.workers, size, b.get("backend")) if record.workers > 1 else None
    buckets_ = b.get("bucket_bytes")
    cpu = host_load(record.get("per_worker") or [])
    return Trial(workers=record.workers, nodes=max(1, len(set(record.get("nodes") or [])) or 1),
                 per_worker_batch=float(record.get("per_worker_batch") or units), units_per_step=float(units),
                 throughput=float(throughput), local_ms=float((b.get("input_ms") or 0.0) + b["compute_ms"]),
                 sigma_ms=math.hypot(between, within), backward_ms=b.get("backward_ms"), gradient_bytes=int(size),
                 bucket_bytes=tuple(buckets_) if buckets_ else None, backend=b.get("backend"), collective=result,
                 **cpu)


def host_load(per_worker: list[dict]) -> dict:
    """From a trial's per-rank rows: the ranks' mean CPU per step (ms), the busiest host's ranks per core it
    offered them (the union of their allowed cores), whether one host ran every rank, and its cores."""
    timed = [w for w in per_worker if w.get("cpu_per_step_s") is not None]
    if not timed or any(not w.get("cpu_set") for w in per_worker):
        return {}
    hosts: dict[str, list[dict]] = {}
    for w in per_worker:
        hosts.setdefault(str(w.get("hostname")), []).append(w)
    busiest, cores = 0.0, 0
    for ranks in hosts.values():
        load: dict[int, float] = {}
        for w in ranks:  # a rank allowed k cores is a 1/k share of each
            for c in w["cpu_set"]:
                load[c] = load.get(c, 0.0) + 1 / len(w["cpu_set"])
        if max(load.values()) > busiest:
            busiest, cores = max(load.values()), len(load)
    return {"cpu_ms": 1e3 * statistics.fmean(w["cpu_per_step_s"] for w in timed),
            "ranks_per_core": busiest, "one_host": len(hosts) == 1, "host_cores": cores}


@dataclass
class Physical:
    """The fitted model of one curve; duck-types orchestrator.modelling.fit.Fit (predict, band, measured, to_dict)."""

    framework: str
    """torch, tensorflow or horovod: how the step's all-reduce calls meet its backward."""
    backend: Optional[str]
    c0_ms: float
    c1_ms: float
    counts: list[int]
    ratios: list[float]
    """r(N) at the measured counts."""
    k1: float
    sigma_rel: float
    """The ranks' spread of one step over the local step."""
    intra: Optional[Link]
    inter: Optional[Link]
    measured_per_node: Optional[int]
    """Workers per node of the measured trials across nodes (None: every multi-worker trial on one node)."""
    gradient_bytes: int
    bucket_bytes: Optional[tuple]
    backward_share: float
    """The backward's share of the local step."""
    inflation: float
    """i >= 1: the calls' time in the step over their time alone (the compute's contention for the host)."""
    repeat_spread: float
    collective_spread: float
    units_per_step: Callable[[int], float]
    per_worker_batch: Callable[[int], float]
    measured: list[int]
    layout: Layout = field(default_factory=Layout)
    cpu_base_ms: Optional[float] = None
    """A rank's CPU per step without the all-reduce (the 1-worker trials'); None: not measured."""
    cpu_comm: Optional[float] = None
    """u_b, ms: the all-reduce's CPU per step per rank is u_b 2(N-1)/N + u_h 2(N-1) (the bytes a rank moves, and
    the messages: one a hop of each call)."""
    cpu_hop: float = 0.0
    """u_h, ms."""
    one_host: bool = False
    host_cores: Optional[int] = None
    measured_ranks_per_core: Optional[float] = None
    """The most ranks per core any measured trial ran (None: not measured)."""
    credit_bytes: float = 0.0
    """c: the bytes an idle link sends at once, ahead of its rate (a shaped link's token bucket)."""
    loo_by_count: dict = field(default_factory=dict)
    r2: float = 1.0
    rmse_relative: float = 0.0
    assumptions: list = field(default_factory=list)

    model = "physical"

    @property
    def loo_error(self) -> Optional[float]:
        return statistics.fmean(self.loo_by_count.values()) if self.loo_by_count else None

    # --- the terms ---
    def local_ms(self, n: int) -> float:
        return max(1e-6, self.c0_ms + self.c1_ms * self.per_worker_batch(n)) * held_ratio(self.counts, self.ratios, n)

    def base_ms(self, n: int) -> float:
        k = self.ranks_per_core(n)
        floor = k * self.cpu_base_ms if self.cpu_base_ms is not None and k > 1 else 0.0
        return max(self.k1 * self.local_ms(n), floor)

    def wait_ms(self, n: int) -> float:
        return self.sigma_rel * self.local_ms(n) * expected_max_normal(n)

    def per_node(self, n: int) -> int:
        return self.layout.workers_per_node or self.measured_per_node or n

    def links(self) -> tuple[Link, Link]:
        """(intra, inter) in this layout: a what-if rate through the class's measured efficiency."""
        lay = self.layout

        def at_rate(link: Optional[Link], rate: Optional[float], fallback: Optional[Link],
                    measured_bps: Optional[float]) -> Link:
            base = link or fallback
            if rate is None:
                return base
            efficiency = base.bus_bytes_per_s / (measured_bps / 8) if link is not None and measured_bps else 1.0
            return replace(base, bus_bytes_per_s=rate / 8 * efficiency)

        # --measured-link is the rate between nodes the sweep ran over: it carries the inter-node link's
        # efficiency; a rate within a node is taken as its bus bandwidth.
        intra = at_rate(self.intra, lay.intra_node_bps, self.inter, None)
        inter = at_rate(self.inter, lay.inter_node_bps, self.intra, lay.measured_link_bps)
        return intra, inter

    def crossed(self, n: int) -> Link:
        """The link the calls at n cross: between nodes where they span several, else within the one."""
        intra, inter = self.links()
        return inter if math.ceil(n / self.per_node(n)) > 1 else intra

    def emulated_nodes(self) -> bool:
        """The measured trials ran over several nodes that were all one host (the emulated cluster): any
        layout of them stays on that host's cores."""
        return self.one_host and self.measured_per_node is not None

    def ranks_per_core(self, n: int) -> float:
        """Ranks per host core at n: every rank on the one host where the measured trials ran them all on one
        and no what-if spreads them over nodes, or where those trials' nodes were themselves one host (the
        emulated cluster, whatever the layout); else a node's workers on its cores."""
        if not self.host_cores:
            return 0.0
        shared = self.one_host and (not self.layout.workers_per_node or self.emulated_nodes())
        ranks = n if shared else min(n, self.per_node(n))
        return ranks / self.host_cores

    def cpu_comm_ms(self, n: int) -> float:
        if self.cpu_comm is None or n <= 1:
            return 0.0
        return self.cpu_comm * coll.bus_factor(n) + self.cpu_hop * ring_hops(n)

    def call_list(self, n: int) -> tuple[list[Call], list[int]]:
        """The step's calls at n and their bytes; each call at least k times a rank's CPU of it with k ranks a
        core (the bytes' part u_b 2(n-1)/n by its share of the bytes, the messages' u_h 2(n-1) by its share of
        the messages: every call makes its hops, gloo's once a segment)."""
        sizes = buckets(self.gradient_bytes, self.framework, list(self.bucket_bytes) if self.bucket_bytes else None)
        if n <= 1:
            return [], sizes
        intra, inter = self.links()
        k = self.ranks_per_core(n)
        total = float(sum(sizes))
        pipelined = coll.pipelined(self.backend)
        messages = [coll.segments_per_rank(s, n) if pipelined else 1.0 for s in sizes]
        out = []
        for s, m in zip(sizes, messages):
            c = call(s, n, self.per_node(n), intra, inter, self.backend, k)
            if self.cpu_comm is not None:
                cpu = 1e-3 * (self.cpu_comm * coll.bus_factor(n) * s / total
                              + self.cpu_hop * ring_hops(n) * m / sum(messages))
                # k ranks doing theirs at once on each core (processor sharing) take k times it; a core or
                # more a rank, its own CPU is already in the call's measured time
                c = replace(c, cpu_s=k * cpu if k > 1 else 0.0)
            out.append(c)
        return out, sizes

    def calls(self, n: int) -> tuple[list[float], list[int]]:
        """Each call's seconds alone, and its bytes."""
        calls, sizes = self.call_list(n)
        return [c.alone_s() for c in calls], sizes

    def alpha_ms(self, n: int) -> float:
        """A call's latency at n as the all-reduce microbenchmark measures it (its fit's intercept):
        a0 + 2(n-1) q(k) a_hop on the link the ranks cross."""
        if n <= 1:
            return 0.0
        link = self.crossed(n)
        return 1e3 * (link.a0_s + ring_hops(n) * core_queue(self.ranks_per_core(n)) * link.hop_s)

    def cpu_per_rank_ms(self, n: int) -> Optional[float]:
        """A rank's process CPU per step at n (the 1-worker trials' and the all-reduce's); None: not measured."""
        return None if self.cpu_base_ms is None else self.cpu_base_ms + self.cpu_comm_ms(n)

    def cpu_floor_ms(self, n: int) -> float:
        """The step can go no faster than the host's cores do every rank's CPU work of a step."""
        if self.cpu_base_ms is None:
            return 0.0
        k = self.ranks_per_core(n)
        return k * (self.cpu_base_ms + self.cpu_comm_ms(n)) if k > 1 else 0.0

    def comm_ms(self, n: int) -> float:
        """The step's all-reduce calls alone, one after another."""
        return 1e3 * sum(self.calls(n)[0]) if n > 1 else 0.0

    def calls_in_flight(self) -> int:
        """DDP's buckets go to the backend as they fill (gloo's threads may run two); Horovod's one background
        thread and TensorFlow's pack make one call at a time."""
        return in_flight(self.backend) if self.framework == "torch" else 1

    def credit_s(self, n: int, credit_bytes: Optional[float] = None) -> float:
        """The credit as link time on the link the calls cross, at this layout's rate."""
        c = self.credit_bytes if credit_bytes is None else credit_bytes
        return credit_link_s(c, self.crossed(n).bus_bytes_per_s) if n > 1 else 0.0

    def exposed_ms(self, n: int, inflation: Optional[float] = None, credit_bytes: Optional[float] = None) -> float:
        """The step's all-reduce past its backward (``exposed_s``), ms."""
        return step_from_terms(self.step_terms(n), self.inflation if inflation is None else inflation,
                               self.credit_bytes if credit_bytes is None else credit_bytes, part="exposed")

    def step_ms(self, n: int, inflation: Optional[float] = None, credit_bytes: Optional[float] = None) -> float:
        return step_from_terms(self.step_terms(n), self.inflation if inflation is None else inflation,
                               self.credit_bytes if credit_bytes is None else credit_bytes)

    def step_terms(self, n: int) -> dict:
        """What the step at n is made of, before the in-step factor and the credit (``step_from_terms``)."""
        calls, sizes = self.call_list(n)
        link = self.crossed(n) if n > 1 else None
        base, wait = self.base_ms(n), self.wait_ms(n)
        backward = 1e-3 * self.backward_share * base
        return {"calls": calls, "sizes": sizes, "backward_s": backward,
                "overlap": not self.framework.startswith("tensorflow"), "in_flight": self.calls_in_flight(),
                "bus_bytes_per_s": link.bus_bytes_per_s if link else 1.0, "base_ms": base, "wait_ms": wait,
                "cpu_floor_ms": self.cpu_floor_ms(n), "idle_s": 1e-3 * (base + wait) - backward}

    def predict(self, workers: int) -> float:
        n = int(workers)
        return 1e3 * self.units_per_step(n) / self.step_ms(n)

    def parts(self, workers: int) -> dict:
        n = int(workers)
        nodes, link = math.ceil(n / self.per_node(n)), self.crossed(n)
        return {"local_ms": self.base_ms(n), "wait_ms": self.wait_ms(n), "comm_ms": self.comm_ms(n),
                "inflation": self.inflation, "credit_kib": self.credit_bytes / 1024,
                "exposed_comm_ms": self.exposed_ms(n), "step_ms": self.step_ms(n),
                "cpu_floor_ms": self.cpu_floor_ms(n), "ranks_per_core": self.ranks_per_core(n),
                "alpha_ms": self.alpha_ms(n), "cpu_per_rank_ms": self.cpu_per_rank_ms(n),
                "bus_gb_per_s": link.bus_bytes_per_s / 1e9 if n > 1 else None, "nodes": nodes}

    def sigma(self, n: int) -> float:
        """The band's relative sigma at n: the repeats' spread and the collective's, by its share of the step;
        widened beyond the largest measured count."""
        share = self.exposed_ms(n) / self.step_ms(n) if n > 1 else 0.0
        noise = math.hypot(self.repeat_spread, share * self.collective_spread)
        top = max(self.measured)
        return noise * (1 + math.log(n / top)) if n > top else noise

    def band(self, workers: int) -> tuple[float, float]:
        p, s = self.predict(workers), self.sigma(int(workers))
        return (p * math.exp(-Z90 * s), p * math.exp(Z90 * s))

    def with_layout(self, layout: Layout) -> "Physical":
        return replace(self, layout=layout)

    def to_dict(self) -> dict:
        return {"model": "physical", "measured_workers": self.measured, "loo_error": self.loo_error,
                "loo_by_count": {str(k): v for k, v in self.loo_by_count.items()},
                "r2": self.r2, "rmse_relative": self.rmse_relative, "layout": self.layout.to_dict(),
                "band": ("the measurements' spread (the repeats', and the all-reduce's points about its fit), not a "
                         "bound on the model's error"),
                "assumptions": list(self.assumptions),
                "params": {"framework": self.framework, "backend": self.backend,
                           "algorithms": list(algorithms(self.backend)),
                           "calls_in_flight": self.calls_in_flight(),
                           "local_c0_ms": self.c0_ms,
                           "local_ms_per_sample": self.c1_ms,
                           "local_ratio": {str(c): r for c, r in zip(self.counts, self.ratios)},
                           "k_one_worker": self.k1, "sigma_relative": self.sigma_rel,
                           "intra_node": self.intra.to_dict() if self.intra else None,
                           "inter_node": self.inter.to_dict() if self.inter else None,
                           "measured_workers_per_node": self.measured_per_node,
                           "gradient_bytes": self.gradient_bytes,
                           "buckets": len(buckets(self.gradient_bytes, self.framework,
                                                  list(self.bucket_bytes) if self.bucket_bytes else None)),
                           "backward_share": self.backward_share, "inflation": self.inflation,
                           "credit_kib": self.credit_bytes / 1024,
                           "repeat_spread": self.repeat_spread, "collective_spread": self.collective_spread,
                           "cpu_base_ms": self.cpu_base_ms,
                           "cpu_comm_ms_per_bus_factor": self.cpu_comm, "cpu_comm_ms_per_hop": self.cpu_hop,
                           "one_host": self.one_host, "host_cores": self.host_cores,
                           "measured_ranks_per_core": self.measured_ranks_per_core}}


def what_if_problem(model: Physical, layout: Layout) -> Optional[str]:
    """Why a what-if would change no number of this model (None where it would): a rate for a link the
    layout never crosses, workers per node without a link to spread them over."""
    across = model.measured_per_node is not None
    per_node = layout.workers_per_node or model.measured_per_node
    if layout.inter_node_bps and not across and layout.workers_per_node is None:
        return ("--bandwidth sets the link between nodes, but every multi-worker trial ran on one node and no "
                "--workers-per-node spreads the workers over nodes: pass --workers-per-node")
    if layout.intra_node_bps and per_node == 1:
        return ("--intra-bandwidth sets the link within a node, but the layout has one worker per node: pass "
                "--workers-per-node 2 or more")
    if layout.workers_per_node and not across and not layout.inter_node_bps:
        return ("--workers-per-node spreads the workers over nodes, but every multi-worker trial ran on one node, "
                "so the link between nodes was never measured: pass --bandwidth (the link rate between nodes)")
    if (layout.workers_per_node and layout.workers_per_node > 1 and model.intra is None
            and not layout.intra_node_bps and algorithms(model.backend) == ("ring",)):
        return ("--workers-per-node puts workers together on a node, but the link within a node was never measured "
                "(every multi-worker trial ran one worker per node) and a flat ring goes at its slowest link anyway: "
                "pass --intra-bandwidth (the link within a node) for the layout to matter")
    return None


def beyond_measured_sharing(model: Physical, top: int) -> Optional[tuple[int, float]]:
    """(the first count, the ranks per core at ``top``) where more ranks share a host core than in any
    measured trial (None where none do, or sharing was not measured): the host-CPU terms (processor sharing,
    ``core_queue``) are extrapolated there; the host's own per-rank CPU and wake-up costs, which grow with
    the sharing, were never measured at it."""
    measured = model.measured_ranks_per_core
    if not measured or not model.host_cores:
        return None
    limit = max(1.0, measured) + 1e-9
    first = next((n for n in range(2, int(top) + 1) if model.ranks_per_core(n) > limit), None)
    return (first, model.ranks_per_core(int(top))) if first else None


def sharing_caveat(model: Physical, top: int) -> Optional[str]:
    """``beyond_measured_sharing`` in words (None where the predictions stay within the measured sharing)."""
    beyond = beyond_measured_sharing(model, top)
    if not beyond:
        return None
    return (f"from {beyond[0]} workers on, more ranks share a host core than in any measured trial "
            f"({model.measured_ranks_per_core:.1f} a core measured, {beyond[1]:.1f} at {top}): the host-CPU "
            "terms are extrapolated there, and a host's per-rank CPU and wake-up costs that grow with the "
            "sharing are not in them (expect it slower; measure one trial at that sharing to know)")


def what_if_assumptions(model: Physical, layout: Layout, top: Optional[int] = None) -> list[str]:
    """What a what-if takes for granted beyond the measurements, in words (``top``: the largest count it
    predicts)."""
    out = []
    caveat = sharing_caveat(model.with_layout(layout), top) if top else None
    if caveat:
        out.append(caveat)
    if layout.inter_node_bps:
        if model.inter is None:
            out.append("the link between nodes was never measured: its bus bandwidth is taken as the rate itself and "
                       "its latency as the measured intra-node one")
        elif not layout.measured_link_bps:
            out.append("no --measured-link: the rate between nodes is taken as the bus bandwidth itself")
        else:
            out.append("the bus bandwidth between nodes is the rate times the measured efficiency "
                       f"({model.inter.bus_bytes_per_s * 8 / layout.measured_link_bps:.2f})")
    if layout.intra_node_bps:
        out.append("the rate within a node is taken as its bus bandwidth"
                   + ("; the link within a node was never measured: its latency is taken as the inter-node one"
                      if model.intra is None else ""))
    elif layout.workers_per_node and layout.workers_per_node > 1 and model.intra is None:
        out.append("the link within a node was never measured: taken as the inter-node one")
    if layout.workers_per_node:
        out.append(f"{layout.workers_per_node} worker(s) per node, ranks placed node by node (contiguous)")
        if model.emulated_nodes() and model.host_cores:
            out.append(f"every rank on one host of {model.host_cores} core(s), as the measured trials' nodes were "
                       "(an emulated cluster)")
        elif model.one_host and model.host_cores:
            out.append(f"each node's workers on {model.host_cores} core(s) of their own (the sweep ran every rank on "
                       "one host)")
    elif model.one_host and model.host_cores:
        out.append(f"every rank on one host of {model.host_cores} core(s), as every measured trial ran")
    return out


def framework_of(curve) -> str:
    """How the step's all-reduce calls are cut and meet the backward: torch (DDP's buckets, overlapped),
    horovod (torch's DistributedOptimizer: 64 MiB fusion, overlapped), tensorflow (after the backward: the
    strategy's one pack, or Horovod's DistributedGradientTape after tape.gradient)."""
    if curve.framework == "tensorflow":
        return "tensorflow-horovod" if curve.strategy == "horovod" else "tensorflow"
    return "horovod" if curve.strategy == "horovod" else "torch"


def fit_trials(trials: list[Trial], units_per_step: Callable[[int], float], per_worker_batch: Callable[[int], float],
               framework: str = "torch", loo: bool = True) -> Optional[Physical]:
    """The model from measured trials; None without a multi-worker trial whose all-reduce was measured."""
    multi = [t for t in trials if t.workers > 1 and t.collective is not None]
    if not multi:
        return None
    by_batch: dict[float, list[float]] = {}
    for t in trials:
        by_batch.setdefault(t.per_worker_batch, []).append(t.local_ms)
    c0, c1 = linear_batch(list(by_batch), [statistics.fmean(v) for v in by_batch.values()])
    counts = sorted({t.workers for t in trials})
    ratios = [statistics.fmean(t.local_ms for t in trials if t.workers == c) /
              max(1e-9, c0 + c1 * statistics.fmean(t.per_worker_batch for t in trials if t.workers == c))
              for c in counts]
    singles = [t.step_ms / t.local_ms for t in trials if t.workers == 1 and t.local_ms > 0]
    assumptions = []
    if singles:
        k1 = statistics.median(singles)
    else:
        k1 = 1.0
        assumptions.append("no 1-worker trial: the timed step's own cost beyond the local blocks is taken as none")
    sigma_rel = statistics.fmean(t.sigma_ms / t.local_ms for t in multi if t.local_ms > 0)
    intra = fit_link([t for t in multi if t.nodes == 1])
    inter = fit_link([t for t in multi if t.nodes > 1])
    across = sorted({t.per_node for t in multi if t.nodes > 1})
    backwards = [t.backward_ms / t.local_ms for t in trials if t.backward_ms and t.local_ms > 0]
    if backwards:
        backward_share = min(1.0, statistics.fmean(backwards))
    else:
        backward_share = BACKWARD_SHARE
        if not framework.startswith("tensorflow"):  # (without overlap it changes nothing)
            assumptions.append(f"the backward pass taken as {BACKWARD_SHARE:.0%} of the compute (not timed apart)")
    if framework == "tensorflow":
        assumptions.append("TensorFlow's gradient all-reduce as one pack after the backward (MultiWorkerMirrored's "
                           "default; eager execution all-reduces per variable, which pays the latency more often)")
    if framework == "horovod":
        assumptions.append("Horovod's gradient fused in 64 MiB buffers, each all-reduced once the backward produced "
                           "it (its cycle fuses what is ready sooner: exposure may be overestimated)")
    repeat_spread = _repeat_spread(trials)
    cpu_base, (cpu_comm, cpu_hop), one_host, host_cores = host_cpu_terms(trials)
    model = Physical(framework=framework, backend=multi[0].backend, c0_ms=c0, c1_ms=c1, counts=counts,
                     ratios=ratios, k1=max(k1, 1e-3), sigma_rel=sigma_rel, intra=intra, inter=inter,
                     measured_per_node=across[-1] if across else None, gradient_bytes=multi[0].gradient_bytes,
                     bucket_bytes=multi[0].bucket_bytes, backward_share=backward_share, inflation=1.0,
                     repeat_spread=repeat_spread,
                     collective_spread=statistics.fmean(t.collective.spread for t in multi),
                     units_per_step=units_per_step, per_worker_batch=per_worker_batch, measured=counts,
                     assumptions=assumptions, cpu_base_ms=cpu_base, cpu_comm=cpu_comm, cpu_hop=cpu_hop,
                     one_host=one_host,
                     host_cores=host_cores,
                     measured_ranks_per_core=max((t.ranks_per_core for t in trials if t.ranks_per_core),
                                                 default=None))
    model.inflation, model.credit_bytes = fit_in_step(model, multi)
    if model.credit_bytes > 0:
        model.assumptions.append(
            f"the timed steps' all-reduce ran faster than the microbenchmark's back-to-back calls allow: taken as "
            f"{model.credit_bytes / 1024:.0f} KiB that a link idle through the compute sends at once, ahead of "
            "its rate (a shaped link's token bucket, as the emulated cluster's tbf has; on other links, overlap "
            "with the backward that the model misses)")
    if model.credit_bytes >= CREDIT_GRID[-1]:
        model.assumptions.append(f"the idle link's credit is at the most the fit allows ({CREDIT_GRID[-1] / 1024:.0f} "
                                 "KiB): the steps' all-reduce may be faster still, for a reason the model lacks")
    slower = statistics.fmean(model.step_ms(t.workers) / t.step_ms - 1 for t in multi)
    if slower > model.repeat_spread:
        model.assumptions.append(
            f"the model's steps at the measured counts are {slower:.0%} slower than the timed ones on average, "
            f"beyond their spread ({model.repeat_spread:.0%}), with its credit and in-step factor at their best: "
            "the all-reduce overlaps the step more than the model's terms allow (predictions are low)")
    x = np.asarray([t.throughput for t in trials])
    fitted = np.asarray([model.predict(t.workers) for t in trials])
    ss_tot = float(((x - x.mean()) ** 2).sum())
    model.r2 = 1.0 - float(((x - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    model.rmse_relative = float(np.sqrt((((fitted - x) / x) ** 2).mean()))
    if loo:
        model.loo_by_count = leave_one_out(trials, units_per_step, per_worker_batch, framework)
    return model


def host_cpu_terms(trials: list[Trial]) -> tuple:
    """(CPU per step without the all-reduce, (u_b, u_h) of the all-reduce's, one host, its cores) from the
    trials that measured their CPU: the all-reduce's CPU per step per rank, beyond the 1-worker step's, as
    u_b 2(n-1)/n (the bytes a rank moves, in S) + u_h 2(n-1) (its messages: a send and a receive a hop of
    each call), non-negative least squares; with one multi-worker count, the bytes' alone. (None, (None, 0),
    False, None) where none measured it or no 1-worker trial did."""
    timed = [t for t in trials if t.cpu_ms is not None and t.host_cores]
    singles = [t.cpu_ms for t in timed if t.workers == 1]
    multi = [t for t in timed if t.workers > 1]
    if not singles or not multi:
        return None, (None, 0.0), False, None
    base = statistics.fmean(singles)
    extra = [max(0.0, t.cpu_ms - base) for t in multi]
    if len({t.workers for t in multi}) > 1:
        u_b, u_h = nonnegative_least_squares([[coll.bus_factor(t.workers), ring_hops(t.workers)] for t in multi],
                                             extra)
    else:
        factors = [coll.bus_factor(t.workers) for t in multi]
        u_b, u_h = sum(f * y for f, y in zip(factors, extra)) / sum(f * f for f in factors), 0.0
    return base, (u_b, u_h), all(t.one_host for t in timed), max(t.host_cores for t in timed)


F95 = {1: 161.4, 2: 18.51, 3: 10.13, 4: 7.71, 5: 6.61, 6: 5.99, 7: 5.59, 8: 5.32, 9: 5.12, 10: 4.96, 12: 4.75,
       15: 4.54, 20: 4.35, 30: 4.17}
"""The F distribution's 95th percentile with (1, d) degrees of freedom (beyond 30: 3.84, the chi-square's)."""


def f95(d: int) -> float:
    return F95[max(k for k in F95 if k <= d)] if d <= 30 else 3.84


def fit_in_step(model: Physical, multi: list[Trial]) -> tuple[float, float]:
    """(i, c): the calls' in-step factor i >= 1 and the idle link's credit c >= 0 bytes that best give the timed
    steps (least squares of the relative error, RSS), both at once on their grids: coarse, then fine about the
    best, re-centred until the best is inside the window. A credit is kept only where it explains the steps
    better than the best i with none by more than their noise (n_trials s^2, s the repeats' spread) and
    significantly (an F test at 95%: (RSS_0 - RSS) / (RSS / (n_trials - 2)) beyond F(1, n_trials - 2), where
    n_trials > 2): otherwise 0, the microbenchmark's calls as they are. Ties go to the smallest i, then c."""
    terms = [(model.step_terms(t.workers), t.step_ms) for t in multi]
    noise = len(terms) * max(REPEAT_FLOOR, model.repeat_spread) ** 2
    cache: dict = {}

    def error(i: float, c: float) -> float:
        if (i, c) not in cache:
            cache[i, c] = sum((step_from_terms(x, i, c) / step - 1) ** 2 for x, step in terms)
        return cache[i, c]

    def best(pairs) -> tuple[float, float, float]:
        scored = [(error(float(i), float(c)), float(i), float(c)) for i, c in pairs]
        low = min(e for e, _, _ in scored)
        return min((x for x in scored if x[0] <= low * (1 + 1e-12) + 1e-15), key=lambda x: (x[1], x[2]))

    _, i0, c0 = best((i, c) for i in INFLATION_GRID[::10] for c in CREDIT_GRID[::16])
    for _ in range(50):
        near_i = [i for i in INFLATION_GRID if abs(i - i0) <= 0.1 + 1e-9]
        near_c = [c for c in CREDIT_GRID if abs(c - c0) <= 16 * 4096]
        both, i1, c1 = best((i, c) for i in near_i for c in near_c)
        if (i1, c1) == (i0, c0):
            break
        i0, c0 = i1, c1
    alone, plain, _ = best((i, 0.0) for i in INFLATION_GRID)
    d = len(terms) - 2
    significant = d < 1 or (alone - both) * d > f95(d) * both
    if c0 == 0 or alone - both <= noise or not significant:
        return plain, 0.0
    return i0, c0


def credit_link_s(credit_bytes: float, bus_bytes_per_s: float) -> float:
    """The credit as link time: c bytes at the bus bandwidth of the link the calls cross."""
    return max(0.0, credit_bytes) / bus_bytes_per_s


def step_from_terms(terms: dict, inflation: float, credit_bytes: float, part: str = "step") -> float:
    """``Physical.step_ms`` (``part="exposed"``: its exposed all-reduce) from its ``step_terms`` at an in-step
    factor and credit: the one path the model and its fit take."""
    exposed = 0.0
    if terms["calls"]:
        exposed = 1e3 * exposed_s([c.scaled(inflation) for c in terms["calls"]], terms["sizes"],
                                  terms["backward_s"], overlap=terms["overlap"], in_flight=terms["in_flight"],
                                  credit_s=credit_link_s(credit_bytes, terms["bus_bytes_per_s"]),
                                  idle_s=terms["idle_s"])
    if part == "exposed":
        return exposed
    return max(terms["base_ms"] + terms["wait_ms"] + exposed, terms["cpu_floor_ms"])


def _repeat_spread(trials: list[Trial]) -> float:
    """The relative standard deviation of the throughput among a count's repeats, pooled (at least 2%)."""
    deviations = []
    for c in {t.workers for t in trials}:
        xs = [t.throughput for t in trials if t.workers == c]
        if len(xs) > 1:
            mean = statistics.fmean(xs)
            deviations += [(x / mean - 1) ** 2 for x in xs]
    spread = math.sqrt(sum(deviations) / max(1, len(deviations) - 1)) if len(deviations) > 1 else 0.0
    return max(REPEAT_FLOOR, spread)


def held_out_counts(counts: list[int]) -> list[int]:
    """The counts a model is scored on, each predicted from the others: every measured count but the smallest
    (the curve fits' baseline, the physical model's k1). The comparison of the two families takes the counts
    both scored (orchestrator.modelling.analysis.choose)."""
    return sorted(counts)[1:]


def link_class(trial: Trial) -> str:
    return "inter" if trial.nodes > 1 else "intra"


def leave_one_out(trials: list[Trial], units_per_step, per_worker_batch, framework: str) -> dict:
    """Relative error at each held-out count, predicted from the others. A count whose link class (within one
    node, across nodes) no other count measured is not held out: no model of that link exists without it."""
    errors = {}
    for held in held_out_counts(sorted({t.workers for t in trials})):
        rest = [t for t in trials if t.workers != held]
        classes = {link_class(t) for t in rest if t.workers > 1}
        if any(link_class(t) not in classes for t in trials if t.workers == held):
            continue
        model = fit_trials(rest, units_per_step, per_worker_batch, framework, loo=False)
        if model is None:
            continue
        measured = statistics.fmean(t.throughput for t in trials if t.workers == held)
        errors[held] = abs(model.predict(held) - measured) / measured
    return errors


def fit_curve(curve, layout: Optional[Layout] = None) -> Optional[Physical]:
    """The physical model of one orchestrator.modelling.scaling.Curve (None where its trials carry no breakdown with a
    measured all-reduce), in ``layout``."""
    from orchestrator.modelling.scaling import rate

    trials = [t for r in curve.records if (t := from_record(r, curve.metric, rate(r, curve.metric) or 0.0))]
    if not trials:
        return None
    first = min(trials, key=lambda t: t.workers)
    per_worker_b, global_b = first.per_worker_batch, first.per_worker_batch * first.workers
    weak = curve.scaling != "strong"
    samples = curve.metric == "samples_per_sec"

    def per_worker_batch(n: int) -> float:
        return per_worker_b if weak else global_b / n

    def units_per_step(n: int) -> float:
        return (per_worker_batch(n) * n) if samples else 1.0

    model = fit_trials(trials, units_per_step, per_worker_batch, framework_of(curve))
    return model.with_layout(layout) if model and layout else model
