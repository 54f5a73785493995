"""Hardware detection: one detector per source, merged into one Inventory."""

from __future__ import annotations

from ..inventory import Inventory


def detect_inventory() -> Inventory:
    """Placeholder until the detectors land."""
    return Inventory()
