"""Pieces the sub-commands share: --inventory, --no-cache, --json and the lock options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from autopkgtest_hw.locks import allocate
from autopkgtest_hw.spec.inventory import Inventory


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
        from autopkgtest_hw.detect import detect_machine

        return detect_machine()
    return get_inventory_and_origin(args)[0]


def get_inventory_and_origin(args: argparse.Namespace) -> tuple[Inventory, str]:
    """The inventory and where it came from: FROM_FILE, or ``detect``'s FROM_CACHE or DETECTED."""
    if getattr(args, "inventory", None):
        return Inventory.load(args.inventory), FROM_FILE
    from autopkgtest_hw.detect import detect_host  # only when needed: it imports the detectors

    return detect_host(use_cache=not getattr(args, "no_cache", False))


def add_lock_options(
    parser: argparse.ArgumentParser, seconds: Callable[[str], object] = float
) -> None:
    """--lock-dir and --lock-timeout of the commands that lock devices themselves.

    ``seconds`` converts --lock-timeout (``str`` keeps the text, to hand on to the virt server).
    """
    parser.add_argument(
        "--lock-dir",
        default=allocate.DEFAULT_LOCK_DIR,
        metavar="DIR",
        help="directory of the per-device locks (default: %(default)s)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=seconds("0"),
        metavar="SECONDS",
        help="wait this long for busy devices, in the queue (default: 0, fail at once)",
    )
