"""Inside a testbed: skip (exit 77) unless every hardware spec holds, else run COMMAND.

autopkgtest-hw require SPEC... [-- COMMAND [ARG...]]

For tests that keep "Restrictions: skippable" and check their hardware
themselves.  When a spec does not hold, the verdict's reason goes to stderr
and the exit status is 77, which autopkgtest reports as SKIP for a skippable
test.  When all hold, COMMAND replaces this process (its exit status is the
test's); without a COMMAND the exit status is 0.

An invalid spec exits 2: inside a test that reads as a failure, which is
right, because the maintainer has to fix the spec.
"""

from __future__ import annotations

import argparse
import os
import sys

from autopkgtest_hw.base import log
from autopkgtest_hw.base.errors import Exit, UsageError
from autopkgtest_hw.commands._common import add_inventory_option, get_inventory
from autopkgtest_hw.spec.language import SpecError, parse
from autopkgtest_hw.spec.matcher import match

HELP = "in a test: exit 77 unless the hardware specs hold, else run the command"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s [--inventory FILE] SPEC... [-- COMMAND [ARG...]]"
    add_inventory_option(parser)
    # argparse drops "--" from positionals, so keep the rest verbatim and split it here.
    parser.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="SPEC... [-- COMMAND [ARG...]]",
        help="hardware specs (all must hold), then the command after --",
    )


def _split(words: list[str]) -> tuple[list[str], list[str], str | None]:
    """SPEC words, COMMAND words and a late --inventory (given after a spec)."""
    if "--" in words:
        at = words.index("--")
        specs, command = words[:at], words[at + 1 :]
    else:
        specs, command = words, []
    inventory = None
    rest: list[str] = []
    it = iter(specs)
    for word in it:
        if word == "--inventory":
            inventory = next(it, None)
            if inventory is None:
                raise UsageError("--inventory needs a FILE")
        elif word.startswith("--inventory="):
            inventory = word.split("=", 1)[1]
        elif word in ("-d", "--debug"):
            log.setup("autopkgtest-hw", True)
        elif word.startswith("-"):
            raise UsageError(f"unknown option {word!r} (put the command after --)")
        else:
            rest.append(word)
    return rest, command, inventory


def run(args: argparse.Namespace) -> int:
    texts, command, late_inventory = _split(list(args.words))  # UsageError: cli exits 2
    if late_inventory is not None:
        args.inventory = late_inventory
    if not texts:
        raise UsageError("no SPEC given (usage: require SPEC... [-- COMMAND [ARG...]])")
    try:
        specs = [(text, parse(text)) for text in texts]
    except SpecError as exc:
        if command:
            raise
        raise UsageError(f"{exc} (put -- before the command)") from None
    inventory = get_inventory(args)  # InventoryError: cli exits 2
    verdicts = [match(s, inventory, label=t, subject="testbed") for t, s in specs]
    failed = [v for v in verdicts if not v.satisfied]
    if failed:
        for v in failed:
            log.info(f"skipping: {v.message}")
        return Exit.SKIP
    if not command:
        return Exit.OK
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        log.error(f"{command[0]}: command not found")
        return Exit.NOT_FOUND
    except OSError as exc:
        log.error(f"{command[0]}: cannot run: {exc.strerror}")
        return Exit.CANNOT_RUN
    return Exit.CANNOT_RUN  # pragma: no cover - execvp does not return
