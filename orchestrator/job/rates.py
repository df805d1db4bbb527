"""Pure: link rates as people write them ("300mbit", "100Gbit/s", "25GB/s"), in bits per second.

    parse(text, field) -> bits per second       refused with the field, the value and the forms it takes
    show(bits_per_s) -> "300 Mbit/s"

Bits are decimal (k = 10^3), as tc and network vendors count them; a capital B is bytes (x 8).
"""

from __future__ import annotations

import re

from orchestrator.errors import UserError

_FORM = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]?)(bit|bits|bps|b|Bps|B|byte|bytes)(/s)?\s*$")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
FORMS = "e.g. 300mbit, 1gbit, 100Gbit/s, 25GB/s (bits unless a capital B)"


def parse(text: str, field: str) -> float:
    match = _FORM.match(str(text))
    if not match:
        raise UserError(f"{field} {text!r}: not a rate; write a number and a unit, {FORMS}")
    number, prefix, unit, _ = match.groups()
    value = float(number) * _SCALE[prefix.lower()]
    if unit in ("B", "Bps", "byte", "bytes"):
        value *= 8
    if value <= 0:
        raise UserError(f"{field} {text!r}: must be above 0")
    return value


def show(bits_per_s: float) -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:g} {prefix}bit/s"
    return f"{bits_per_s:g} bit/s"


def tc(bits_per_s: float) -> str:
    """The rate as tc takes it."""
    return f"{int(round(bits_per_s))}bit"
