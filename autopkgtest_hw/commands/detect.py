"""Show the hardware this machine has, as autopkgtest-hw sees it.

Lists the CPU, every GPU or other compute device with the spec classes it
satisfies, and what each detector (cpu, udev, nvml, opencl) did: ok,
unavailable (with the reason) or error.  AUTOPKGTEST_HW_DETECTORS=udev,cpu
runs only the named detectors.  The devices come from the host inventory
cache when nothing it fingerprints has changed (--no-cache detects afresh);
the last line (the "origin" field with --json) says which.  Exit status: 0,
or 2 for an unreadable --inventory file.
"""

from __future__ import annotations

import argparse
import json

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.commands._common import (
    FROM_FILE,
    add_inventory_option,
    add_json_option,
    get_inventory_and_origin,
)
from autopkgtest_hw.spec.render import inventory_table

HELP = "show this machine's devices and which detectors ran"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    inventory, origin = get_inventory_and_origin(args)  # InventoryError: cli exits 2
    if args.json:
        # "origin" is not part of the inventory: --inventory reads the output back as it was.
        print(json.dumps({**inventory.to_dict(), "origin": origin}, indent=2))
    else:
        print(inventory_table(inventory), end="")
        print(f"\nInventory: {ORIGIN_TEXT[origin]}")
    return Exit.OK


ORIGIN_TEXT = {
    "cache": "from the host inventory cache (nothing it fingerprints changed; --no-cache detects)",
    "detected": "detected now",
    FROM_FILE: "read from the --inventory file",
}
