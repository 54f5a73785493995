"""Pieces every sub-command shares: --inventory, --no-cache and --json."""

from __future__ import annotations

import argparse

from ..inventory import Inventory


def add_inventory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory",
        metavar="FILE",
        help="read a saved inventory (from 'detect --json') instead of detecting",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="detect afresh, not from the host inventory cache (which is then rewritten)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


#: Where an inventory came from besides the detectors or their cache: --inventory.
FROM_FILE = "file"


def get_inventory(args: argparse.Namespace, machine_only: bool = False) -> Inventory:
    """The saved inventory if --inventory was given, else this machine's.

    ``machine_only``: the caller reads only the CPU, so no device detector runs.
    Raises InventoryError for an unreadable file.
    """
    if machine_only and not getattr(args, "inventory", None):
        from ..detect import detect_machine

        return detect_machine()
    return get_inventory_and_origin(args)[0]


def get_inventory_and_origin(args: argparse.Namespace) -> tuple[Inventory, str]:
    """The inventory and where it came from: FROM_FILE, or ``detect``'s FROM_CACHE or DETECTED."""
    if getattr(args, "inventory", None):
        return Inventory.load(args.inventory), FROM_FILE
    from ..detect import detect_host  # only when needed: it imports the detectors

    return detect_host(use_cache=not getattr(args, "no_cache", False))
