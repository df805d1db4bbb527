"""In the worker: time to a quality target, as MLPerf Training times it: the clock starts at the first data
touch (initialisation is off it) and stops at the evaluation that first meets the target; evaluations run
every ``every`` steps, outside the timed steps (so throughput never includes them), and count on the clock.

    clock = TargetClock(config.get("target"), evaluate, samples_per_step, restored_state)
    clock.check_start()                 step 0: why a target already met cannot be timed (bad input), or None
    clock.touch()                       just before the first step
    hit = clock.after(step, loss)       every step: the target's record the first time it is met, else None
    clock.stop                          the run asked to stop there (``orchestrator train``)
    clock.state()                       saved with a checkpoint: a restarted run keeps its clock and its hit

Every rank evaluates the same model on the same test set, so every rank decides alike (and stops together).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

# What the built-in workloads can be timed to, and which way is better.
BUILTIN_METRICS = {"test_accuracy": "max", "loss": "min"}


def direction(metric: str, mode: Optional[str] = None) -> str:
    return mode or BUILTIN_METRICS.get(metric) or ("min" if "loss" in metric or "error" in metric else "max")


def met(value: float, target: dict) -> bool:
    return value >= target["value"] if direction(target["metric"], target.get("mode")) == "max" else value <= target["value"]


class TargetClock:
    def __init__(self, target: Optional[dict], evaluate: Callable[[], float], samples_per_step: int,
                 restored: Optional[dict] = None):
        self.target = target
        self.evaluate = evaluate
        self.samples_per_step = samples_per_step
        self.elapsed_before = float((restored or {}).get("elapsed_s") or 0.0)
        self.eval_s = float((restored or {}).get("eval_s") or 0.0)
        self.hit: Optional[dict] = (restored or {}).get("hit")
        self.touched: Optional[float] = None
        self.restored = restored is not None

    def _value(self, loss: Optional[float]) -> float:
        if self.target["metric"] == "loss":
            return float(loss)
        started = time.perf_counter()
        value = float(self.evaluate())
        self.eval_s += time.perf_counter() - started
        return value

    def check_start(self) -> Optional[str]:
        """Why the target cannot be timed (it is met at step 0), or None. Returned, not raised: the workload
        reports it and returns, so that Ray Train does not restart the run for an input error."""
        if not self.target or self.restored or self.target["metric"] == "loss":
            return None
        value = self._value(None)
        self.eval_s = 0.0  # before the clock starts
        if met(value, self.target):
            return (f"training.target: {self.target['metric']} is already {value:.4g} at step 0, which meets "
                    f"{self.target['value']:g}; raise training.target.value (nothing would be timed)")
        return None

    def touch(self) -> None:
        if self.touched is None:
            self.touched = time.time()

    def elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self.touched if self.touched else 0.0)

    def after(self, step: int, loss: Optional[float]) -> Optional[dict]:
        if not self.target or self.hit is not None or step % self.target["every"]:
            return None
        value = self._value(loss)
        if not met(value, self.target):
            return None
        self.hit = {"metric": self.target["metric"], "value": value, "target": self.target["value"], "step": step,
                    "samples": step * self.samples_per_step, "seconds": self.elapsed(), "eval_seconds": self.eval_s}
        return self.hit

    @property
    def stop(self) -> bool:
        return bool(self.target and self.target.get("stop") and self.hit is not None)

    def state(self) -> dict:
        return {"elapsed_s": self.elapsed(), "eval_s": self.eval_s, "hit": self.hit}
