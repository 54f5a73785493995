"""Show the hardware this machine has, as autopkgtest-hw sees it."""

from __future__ import annotations

import argparse

from .. import log
from ..inventory import InventoryError
from ..render import inventory_table
from ._common import add_inventory_option, add_json_option, get_inventory

HELP = "show this machine's devices and which detectors ran"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        inventory = get_inventory(args)
    except InventoryError as exc:
        log.error(str(exc))
        return 2
    if args.json:
        print(inventory.to_json())
    else:
        print(inventory_table(inventory), end="")
    return 0
