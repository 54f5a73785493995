"""debci's retries, routed again: from the profile's debci queue to a live worker's.

debci's retry (its button, ``POST /api/v1/retry/ID``) creates a new job with
the old one's architecture, ``ARCH+PROFILE``, and publishes it to the queue
debci names after it, ``debci-tests-ARCH+PROFILE-BACKEND``.  debci 3's
workers never consume it (they take a profile's jobs from a tagged queue):
:func:`relay` takes those requests (debci's own messages, run id included)
and publishes each, unchanged, to the shortest live queue among the
profiles with the same hardware; where none is live the request stays where
it is and is reported.  debci 4's workers consume exactly that queue: there
is nothing to move.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopkgtest_hw.base.text import safe
from autopkgtest_hw.fleet.broker import Message, Transport
from autopkgtest_hw.fleet.profiles import QUEUE_PREFIX, Fleet, Profile
from autopkgtest_hw.fleet.route import Router

#: Bound on the requests moved in one run (the rest wait for the next).
MAX_MOVED = 10_000
MAX_BODY = 64 * 1024


def intake_queue(profile: Profile, backend: str) -> str:
    """Where debci's own enqueue (a retry) publishes a job of this profile."""
    return f"{QUEUE_PREFIX}-{profile.debci_arch}-{backend}"


@dataclass(frozen=True)
class Moved:
    request: str
    source: str
    queue: str
    profile: str

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request,
            "from": self.source,
            "queue": self.queue,
            "profile": self.profile,
        }


@dataclass(frozen=True)
class Waiting:
    source: str
    messages: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"from": self.source, "messages": self.messages, "reason": self.reason}


def relay(
    broker: Transport, fleet: Fleet, backend: str, *, allow_idle: bool = False
) -> tuple[list[Moved], list[Waiting]]:
    router = Router(fleet)
    hardware = [p for p in fleet if not p.ordinary]
    # debci 4.x keeps the job's backend (the profile's); 3.x uses its configured one.
    # A queue workers consume is never an intake: with debci 4's workers
    # (queues per ARCH+PROFILE) the retry is already where the profile takes it.
    consumed = {p.queue for p in fleet}
    intakes = [
        (p, q)
        for p in hardware
        for q in dict.fromkeys((intake_queue(p, p.backend), intake_queue(p, backend)))
        if q not in consumed
    ]
    states = broker.states([*(q for _p, q in intakes), *(p.queue for p in fleet)])
    load = {q: (st.messages if st else 0) for q, st in states.items()}
    moved: list[Moved] = []
    waiting: list[Waiting] = []
    for p, source in intakes:
        st = states.get(source)
        if st is None or st.messages == 0:
            continue
        targets = [
            o
            for o in router.equivalents(p)
            if allow_idle or ((s := states.get(o.queue)) is not None and s.consumers > 0)
        ]
        if not targets:
            names = ", ".join(o.name for o in router.equivalents(p))
            reason = f"no live worker of {names}: the retries wait on {source}"
            waiting.append(Waiting(source, st.messages, reason))
            continue
        for target in targets:
            broker.declare(target.queue)
        for _ in range(min(st.messages, MAX_MOVED - len(moved))):
            message = broker.take(source)
            if message is None:
                break
            target = min(targets, key=lambda o: load[o.queue])
            _move(broker, message, target.queue)
            load[target.queue] += 1
            moved.append(Moved(_show(message), source, target.queue, target.name))
    return moved, waiting


def _move(broker: Transport, message: Message, queue: str) -> None:
    try:
        broker.publish(queue, message.body, message.priority)
    except BaseException:
        broker.give_back(message)
        raise
    broker.ack(message)


def _show(message: Message) -> str:
    return safe(message.body[:MAX_BODY].decode(errors="replace"), 300)
