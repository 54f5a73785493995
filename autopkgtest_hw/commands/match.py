"""Check hardware specs against this machine (or a saved inventory).

Exit status: 0 if every spec holds, 1 if one does not, 2 if a spec is invalid.
"""

from __future__ import annotations

import argparse
import json

from autopkgtest_hw.base.errors import Exit
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.commands._common import add_inventory_option, add_json_option, get_inventory
from autopkgtest_hw.spec import classes
from autopkgtest_hw.spec.language import parse
from autopkgtest_hw.spec.matcher import match

HELP = "check hardware specs against this machine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "specs",
        nargs="+",
        metavar="SPEC",
        help="e.g. 'cuda:cc>=8.0' (quoted: > is a redirection to the shell); all must hold",
    )
    add_inventory_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    specs = [(text, parse(text)) for text in args.specs]  # SpecError: cli exits 2
    # A spec about the machine alone (cpu:avx2) needs no device detector and no GPU library.
    asked = {alt.device_class for _, spec in specs for alt in spec.alternatives}
    inventory = get_inventory(args, machine_only=all(classes.get(c).is_machine for c in asked))
    verdicts = [match(spec, inventory, label=text) for text, spec in specs]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "spec": v.spec,
                        "satisfied": v.satisfied,
                        "reason": v.message,
                        "unknown_key": v.unknown_key,
                        "devices": [d.ident for d in v.devices],
                    }
                    for v in verdicts
                ],
                indent=2,
            )
        )
    else:
        for v in verdicts:
            print(escape(v.message))
    return Exit.OK if all(v.satisfied for v in verdicts) else Exit.FAILED
