"""Pure: what training costs at each size, and the two answers a budget asks for.

    prices = parse("cpu=0.04,gpu=2.5,tpu=1.2")           per resource-hour (a worker's CPU, GPU, TPU chip)
    hourly(resources_per_worker, workers, prices)         the cluster's price per hour at that size
    rows(...)                                             time and cost to train a length at each size
    cheapest_within(rows, deadline_s), fastest_within(rows, budget)

A length is samples (the default: a fixed amount of work, time = samples / samples per second at N), steps
(time = steps / steps per second at N, the global batch at N per step: a fixed amount of work under strong
scaling only), epochs (time = epochs x training samples / samples per second at N) or the target (time = samples to the target at N /
samples per second at N, at the counts whose trials measured it). Cost = time x price per hour at N.
"""

from __future__ import annotations

import math
from typing import Optional

from orchestrator.errors import UserError
from orchestrator.job.spec import RESOURCE_NAMES as NAMES


def parse(text: str, field: str = "--price") -> dict[str, float]:
    """``cpu=0.04,gpu=2.5`` -> {"CPU": 0.04, "GPU": 2.5}; refused with the field and the part that is wrong."""
    prices: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UserError(f"{field} {text!r}: {part!r} is not RESOURCE=PRICE; write e.g. cpu=0.04,gpu=2.5 "
                            "(per resource-hour)")
        try:
            price = float(value)
        except ValueError:
            raise UserError(f"{field} {text!r}: {value.strip()!r} is not a number (price per {name.strip()}-hour)") from None
        if price < 0 or not math.isfinite(price):
            raise UserError(f"{field} {text!r}: {name.strip()} costs {value.strip()}; a price must be 0 or more")
        prices[NAMES.get(name.strip().lower(), name.strip())] = price
    if not prices:
        raise UserError(f"{field} {text!r}: no price given; write e.g. cpu=0.04,gpu=2.5 (per resource-hour)")
    return prices


def checked(prices: dict, field: str = "pricing") -> dict[str, float]:
    """A pricing: block from a job spec, with the same refusals as --price."""
    return parse(",".join(f"{k}={v}" for k, v in prices.items()), field)


def hourly(resources_per_worker: dict[str, float], ray_workers: int, prices: dict[str, float]) -> float:
    missing = sorted(k for k, v in resources_per_worker.items() if v > 0 and k not in prices and k in NAMES.values())
    if missing:
        raise UserError(f"--price: no price for {missing[0]}, which the trials use; add {missing[0].lower()}=... "
                        "(per resource-hour)")
    return ray_workers * sum(v * prices.get(k, 0.0) for k, v in resources_per_worker.items())


def seconds_for(length: dict, throughput: float, units_per_step: float, samples_to_target: Optional[float],
                train_samples: Optional[int]) -> Optional[float]:
    """How long ``length`` takes at a throughput (samples/s where units_per_step is the global batch)."""
    if throughput <= 0:
        return None
    if "steps" in length:
        return length["steps"] * units_per_step / throughput
    if "epochs" in length:
        return length["epochs"] * train_samples / throughput if train_samples else None
    if "samples" in length:
        return length["samples"] / throughput
    return samples_to_target / throughput if samples_to_target else None


def cheapest_within(rows: list[dict], deadline_s: Optional[float]) -> Optional[dict]:
    """The cheapest size that finishes by the deadline (ties: the faster); None if none does."""
    fitting = [r for r in rows if r.get("seconds") is not None and (deadline_s is None or r["seconds"] <= deadline_s)]
    return min(fitting, key=lambda r: (r["cost"], r["seconds"]), default=None)


def fastest_within(rows: list[dict], budget: Optional[float]) -> Optional[dict]:
    """The fastest size whose cost fits the budget (ties: the cheaper); None if none does."""
    fitting = [r for r in rows if r.get("seconds") is not None and (budget is None or r["cost"] <= budget + 1e-12)]
    return min(fitting, key=lambda r: (r["seconds"], r["cost"]), default=None)


def duration(text: str, field: str = "--deadline") -> float:
    """``90m``, ``2h``, ``3600`` (seconds), ``1.5d`` -> seconds."""
    value = str(text).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    unit = value[-1] if value and value[-1] in scale else "s"
    number = value[:-1] if value and value[-1] in scale else value
    try:
        seconds = float(number) * scale[unit]
    except ValueError:
        raise UserError(f"{field} {text!r}: not a duration; write e.g. 90m, 2h or 3600 (seconds)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{field} {text!r}: must be a finite time above 0; write e.g. 90m, 2h or 3600 (seconds)")
    return seconds
