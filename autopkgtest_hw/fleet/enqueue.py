"""Routed jobs become debci jobs: created with ``debci enqueue``, published to the routed queue.

``debci enqueue`` (debci's own command, on the host that has debci's
database) creates each ``Debci::Job`` and publishes debci's own request,
``PACKAGE SUITE run-id:N [trigger:T]``, with the priority; its queue is the
one routing chose (``debci_amqp_queue``, which debci 3's enqueue honours;
debci 4 publishes to the queue of ``ARCH+PROFILE``, which its workers of the
profile consume) and
its architecture the profile's ``ARCH+PROFILE`` (:attr:`Profile.debci_arch`),
so the collector records the result and debci's pages, API and history keep
each profile apart.  Each word is checked here first, so a request is one
that debci-worker reads the way it was meant.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote_plus

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.fleet.broker import MAX_PRIORITY, Transport, check_queue_name
from autopkgtest_hw.fleet.profiles import QUEUE_PREFIX
from autopkgtest_hw.fleet.route import Job
from autopkgtest_hw.source.archive import PACKAGE_RE

SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}$")
TRIGGER_RE = re.compile(r"^[!-~]{1,500}$")  # printable ASCII, no whitespace
REQUESTOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
DEFAULT_PRIORITY = 5
DEFAULT_REQUESTOR = "autopkgtest-hw"
#: What debci puts where the run id goes, before it has created the job.
RUN_ID_PLACEHOLDER = "run-id:NEW"
#: Bound for one ``debci enqueue`` (a Ruby start and the database, ~3 s here).
ENQUEUE_TIMEOUT = 600


class RequestError(HwError):
    pass


def request_line(package: str, suite: str, trigger: str | None = None) -> str:
    """The request as debci publishes it, the run id left as a placeholder."""
    if not PACKAGE_RE.match(package) or len(package) > 100:
        raise RequestError(f"invalid package name {safe(package)!r}")
    if not SUITE_RE.match(suite):
        raise RequestError(f"invalid suite {safe(suite)!r}")
    words = [package, suite, RUN_ID_PLACEHOLDER]
    if trigger is not None:
        if not TRIGGER_RE.match(trigger):
            raise RequestError(f"invalid trigger {safe(trigger)!r} (one word of printable ASCII)")
        words.append(f"trigger:{quote_plus(trigger)}")  # Ruby's CGI.escape, as debci does
    return " ".join(words)


def check_priority(priority: int) -> int:
    if not 0 <= priority <= MAX_PRIORITY:
        raise RequestError(f"priority {priority} is not in 0..{MAX_PRIORITY}")
    return priority


def check_requestor(requestor: str) -> str:
    if not REQUESTOR_RE.match(requestor):
        raise RequestError(f"invalid requestor {safe(requestor)!r}")
    return requestor


@dataclass(frozen=True)
class Request:
    """One debci job to create: where it goes and the message debci publishes."""

    job: Job
    message: str
    priority: int

    def to_dict(self) -> dict[str, object]:
        return {**self.job.to_dict(), "message": self.message, "priority": self.priority}


def requests_for(
    jobs: Iterable[Job], suite: str, trigger: str | None, priority: int
) -> list[Request]:
    check_priority(priority)
    out = []
    for job in jobs:
        check_queue_name(job.queue)
        out.append(Request(job, request_line(job.package, suite, trigger), priority))
    return out


def enqueue_argv(
    group: list[Request], suite: str, trigger: str | None, requestor: str
) -> list[str]:
    """``debci enqueue`` for requests of one queue and architecture."""
    first = group[0]
    argv = ["debci", "enqueue", "--suite", suite, "--arch", first.job.debci_arch or first.job.arch]
    argv += ["--priority", str(first.priority), "--requestor", check_requestor(requestor)]
    if first.job.backend:
        argv += ["--backend", first.job.backend]
    if trigger is not None:
        argv += ["--trigger", trigger]
    return [*argv, "--", *(r.job.package for r in group)]


def groups(requests: Iterable[Request]) -> list[list[Request]]:
    by: dict[tuple[str, str], list[Request]] = {}
    for r in requests:
        by.setdefault((r.job.queue, r.job.debci_arch), []).append(r)
    return list(by.values())


def create_jobs(
    broker: Transport,
    requests: list[Request],
    suite: str,
    trigger: str | None,
    *,
    requestor: str = DEFAULT_REQUESTOR,
    config_dir: str | None = None,
) -> None:
    """One ``debci enqueue`` per (queue, architecture): debci creates and publishes each job.

    debci up to 3.12 publishes to ``debci_amqp_queue`` (the routed queue);
    4.x publishes to ``debci-tests-ARCH+PROFILE-BACKEND``, declared here so
    that debci keeps the backend: the queue its workers of that profile
    consume (``--debci-queues arch``), or from where :func:`retries.relay`
    moves it to a tagged one.
    """
    if not requests:
        return
    debci = shutil.which("debci")
    if debci is None:
        raise RequestError(
            "debci is not installed here: run enqueue where debci's database is"
            " (install debci-collector) or use --dry-run"
        )
    for group in groups(requests):
        job = group[0].job
        if job.backend:
            broker.declare(f"{QUEUE_PREFIX}-{job.debci_arch or job.arch}-{job.backend}")
        argv = enqueue_argv(group, suite, trigger, requestor)
        env = dict(os.environ, debci_amqp_queue=group[0].job.queue)
        if config_dir:
            env["debci_config_dir"] = config_dir
        try:
            proc = subprocess.run(
                [debci, *argv[1:]],
                capture_output=True,
                text=True,
                env=env,
                timeout=ENQUEUE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RequestError(f"'debci enqueue' did not finish: {exc}") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RequestError(
                f"'debci enqueue' failed ({proc.returncode}): {safe(last, 300)} (is debci's"
                " database set up here? 'debci migrate' as the debci user)"
            )
