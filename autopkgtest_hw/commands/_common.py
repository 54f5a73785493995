"""Pieces the sub-commands share: --inventory, --no-cache, --json and the lock options."""

from __future__ import annotations

import argparse

from autopkgtest_hw.base.argparser import add_inventory_options, add_shared_options
from autopkgtest_hw.locks import allocate
from autopkgtest_hw.spec.inventory import Inventory

#: --inventory FILE and --no-cache (defined once, in base.argparser, for the virt server too).
add_inventory_option = add_inventory_options


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


def add_lock_options(parser: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    """--lock-dir (and unless not ``timeout``, --lock-timeout) of the commands that lock devices."""
    flags = ("--lock-dir", "--lock-timeout") if timeout else ("--lock-dir",)
    add_shared_options(parser, *flags, lock_dir=allocate.DEFAULT_LOCK_DIR)
