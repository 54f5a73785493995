"""Pieces every sub-command shares: --inventory and --json."""

from __future__ import annotations

import argparse

from ..inventory import Inventory


def add_inventory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory",
        metavar="FILE",
        help="read a saved inventory (from 'detect --json') instead of detecting",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def get_inventory(args: argparse.Namespace) -> Inventory:
    """The saved inventory if --inventory was given, else this machine's.

    Raises InventoryError for an unreadable file.
    """
    if getattr(args, "inventory", None):
        return Inventory.load(args.inventory)
    from ..detect import detect_inventory

    return detect_inventory()
