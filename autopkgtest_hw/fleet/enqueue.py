"""debci's test request, and publishing routed jobs to the broker.

A request is one line, ``PACKAGE SUITE [trigger:T] ...`` (what debci-worker's
``do_request`` reads: words split on whitespace, package checked against
``[a-z0-9.+-]``).  Each word is checked here, so a request we publish is one
that debci reads the way it was meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.fleet.broker import MAX_PRIORITY, Broker
from autopkgtest_hw.fleet.route import Job
from autopkgtest_hw.source.archive import PACKAGE_RE

SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}$")
TRIGGER_RE = re.compile(r"^[!-~]{1,500}$")  # printable ASCII, no whitespace
DEFAULT_PRIORITY = 5


class RequestError(HwError):
    pass


def request_line(package: str, suite: str, trigger: str | None = None) -> str:
    if not PACKAGE_RE.match(package) or len(package) > 100:
        raise RequestError(f"invalid package name {safe(package)!r}")
    if not SUITE_RE.match(suite):
        raise RequestError(f"invalid suite {safe(suite)!r}")
    words = [package, suite]
    if trigger is not None:
        if not TRIGGER_RE.match(trigger):
            raise RequestError(f"invalid trigger {safe(trigger)!r} (one word of printable ASCII)")
        words.append(f"trigger:{trigger}")
    return " ".join(words)


def check_priority(priority: int) -> int:
    if not 0 <= priority <= MAX_PRIORITY:
        raise RequestError(f"priority {priority} is not in 0..{MAX_PRIORITY}")
    return priority


@dataclass(frozen=True)
class Published:
    job: Job
    request: str

    def to_dict(self) -> dict[str, object]:
        return {**self.job.to_dict(), "request": self.request}


def publish_jobs(
    broker: Broker,
    jobs: Iterable[Job],
    suite: str,
    trigger: str | None,
    priority: int,
) -> list[Published]:
    """Declare each queue as debci does, then publish one persistent request per job."""
    check_priority(priority)
    jobs = list(jobs)
    requests = [request_line(j.package, suite, trigger) for j in jobs]  # all checked first
    for queue in dict.fromkeys(j.queue for j in jobs):
        broker.declare(queue)
    done = []
    for job, line in zip(jobs, requests, strict=True):
        broker.publish(job.queue, line.encode(), priority)
        done.append(Published(job, line))
    return done
