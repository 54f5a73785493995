"""Show the hardware this machine has, as autopkgtest-hw sees it.

Lists the CPU, every GPU or other compute device with the spec classes it
satisfies, and what each detector (cpu, udev, nvml, opencl) did: ok,
unavailable (with the reason) or error.  AUTOPKGTEST_HW_DETECTORS=udev,cpu
runs only the named detectors.  Exit status: 0, or 2 for an unreadable
--inventory file.
"""

from __future__ import annotations

import argparse

from ..errors import Exit
from ..render import inventory_table
from ._common import add_inventory_option, add_json_option, get_inventory

HELP = "show this machine's devices and which detectors ran"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    inventory = get_inventory(args)  # InventoryError: cli exits 2
    if args.json:
        print(inventory.to_json())
    else:
        print(inventory_table(inventory), end="")
    return Exit.OK
