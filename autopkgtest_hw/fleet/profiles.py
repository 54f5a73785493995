"""The fleet file: which hardware profiles a debci fleet has, and the queue of each.

A fleet file is deb822 (like debian/control), one stanza per profile::

    Profile: h100
    Architecture: amd64
    Inventory: inventories/h100.json
    Hosts: gpu1 gpu2

    Profile: cpu-amd64
    Architecture: amd64
    Ordinary: yes
    Backend: lxc

A *hardware* profile's workers run with the ``hwgpu`` backend (or
``Backend:``).  How they take the profile's jobs depends on debci (the
fleet's :data:`QUEUE_SCHEMES`): debci 3 workers run ``debci-worker --tag
PROFILE`` and consume ``debci-tests-<arch>-<backend>_<profile>``; debci 4
ignores tags, so its workers run ``debci-worker --arch <arch>+<profile>`` and
consume ``debci-tests-<arch>+<profile>-<backend>``, the very queue debci 4
publishes that profile's jobs and retries to.  An *ordinary* profile is
debci's own workers: no tag, queue ``debci-tests-<arch>-<backend>``; they get
the packages that need no hardware and never a GPU package.  ``Inventory:`` is a
saved ``autopkgtest-hw detect --json`` (relative to the fleet file) or
``detect`` (this machine's hardware, for a router that runs on the worker).

Nothing here raises anything but :class:`FleetError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field

from autopkgtest_hw.base.errors import HwError
from autopkgtest_hw.base.text import safe
from autopkgtest_hw.source.control import ControlError, Paragraph, read_paragraphs
from autopkgtest_hw.spec.classes import IDENTIFYING_FIELDS
from autopkgtest_hw.spec.inventory import Inventory, InventoryError

DEFAULT_FLEET = "/etc/autopkgtest-hw/fleet"
ENV_FLEET = "AUTOPKGTEST_HW_FLEET"
HARDWARE_BACKEND = "hwgpu"
ORDINARY_BACKEND = "lxc"  # debci's own default backend
DETECT = "detect"
QUEUE_PREFIX = "debci-tests"
DEBCI_ARCH_SEP = "+"
#: debci 3: a profile's workers take its jobs with ``--tag`` from a queue of their own.
TAGGED = "tagged"
#: debci 4: ``--tag`` is ignored; a profile's workers run as the architecture
#: ``ARCH+PROFILE`` and consume that architecture's queue.
PER_ARCH = "arch"
QUEUE_SCHEMES = (TAGGED, PER_ARCH)

#: debci joins several tags with "_", so a profile name (a tag) never has one;
#: nor a "+": the architecture ``ARCH+PROFILE`` has exactly one (the hwgpu
#: backend takes the real architecture from before it).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
BACKEND_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
KNOWN_FIELDS = frozenset(
    string.capwords(n)
    for n in ("Profile", "Architecture", "Inventory", "Backend", "Ordinary", "Hosts", "Description")
)
MAX_PROFILES = 10_000


class FleetError(HwError):
    """A fleet file that cannot be read or makes no sense, with where."""


@dataclass(frozen=True)
class Profile:
    name: str
    arch: str
    backend: str
    ordinary: bool
    inventory_path: str | None  # absolute path, DETECT, or None (an ordinary profile without)
    hosts: tuple[str, ...] = ()
    description: str = ""
    line: int = 0
    arch_line: int = 0  # the line of its Architecture: field
    scheme: str = TAGGED  # how debci's workers take the profile's jobs (QUEUE_SCHEMES)

    @property
    def tag(self) -> str:
        """What ``debci-worker --tag`` takes; empty for an ordinary profile."""
        return "" if self.ordinary else self.name

    @property
    def debci_arch(self) -> str:
        """The architecture debci records this profile's jobs under: ``amd64+h100``.

        debci keeps history, status and pages per (package, suite, arch), so a
        job on each profile is its own row without changing debci; an ordinary
        profile's jobs are debci's usual ones (plain ``amd64``).
        """
        return self.arch if self.ordinary else f"{self.arch}{DEBCI_ARCH_SEP}{self.name}"

    @property
    def queue(self) -> str:
        """The queue the profile's workers consume (debci's name for it)."""
        if self.ordinary:
            return f"{QUEUE_PREFIX}-{self.arch}-{self.backend}"
        if self.scheme == PER_ARCH:
            return f"{QUEUE_PREFIX}-{self.debci_arch}-{self.backend}"
        return f"{QUEUE_PREFIX}-{self.arch}-{self.backend}_{self.tag}"

    @property
    def worker_options(self) -> tuple[str, ...]:
        """``debci-worker``'s options for this profile's workers (none for an ordinary one)."""
        if self.ordinary:
            return ()
        if self.scheme == PER_ARCH:
            return ("--arch", self.debci_arch)
        return ("--tag", self.tag)

    def to_dict(self) -> dict[str, object]:
        return {
            "profile": self.name,
            "architecture": self.arch,
            "backend": self.backend,
            "ordinary": self.ordinary,
            "tag": self.tag,
            "queue": self.queue,
            "queues": self.scheme,
            "worker_options": list(self.worker_options),
            "debci_arch": self.debci_arch,
            "inventory": self.inventory_path,
            "hosts": list(self.hosts),
            "description": self.description,
        }


@dataclass
class Fleet:
    path: str
    profiles: tuple[Profile, ...]
    _inventories: dict[str, Inventory] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def by_debci_arch(self, debci_arch: str) -> Profile | None:
        return next((p for p in self.profiles if p.debci_arch == debci_arch), None)

    def for_host(self, host: str) -> list[Profile]:
        short = host.split(".", 1)[0]
        return [p for p in self.profiles if host in p.hosts or short in p.hosts]

    def inventory(self, profile: Profile) -> Inventory | None:
        """The profile's hardware (loaded once); None for an ordinary profile without one.

        Raises FleetError when the saved inventory cannot be read.
        """
        path = profile.inventory_path
        if path is None:
            return None
        if path not in self._inventories:
            if path == DETECT:
                from autopkgtest_hw.detect import detect_inventory

                self._inventories[path] = detect_inventory()
            else:
                try:
                    self._inventories[path] = Inventory.load(path)
                except InventoryError as exc:
                    raise FleetError(f"profile {profile.name}: {exc}") from None
        inventory = self._inventories[path]
        if path != DETECT and inventory.cpu.arch and inventory.cpu.arch != profile.arch:
            raise FleetError(
                f"{self.path}:{profile.arch_line or profile.line}: profile {profile.name}:"
                f" Architecture: {profile.arch}, but its inventory {path} is of an"
                f" {safe(inventory.cpu.arch)} machine: correct one of them"
            )
        return inventory


def _one_word(para: Paragraph, name: str, regex: re.Pattern[str], where: str) -> str | None:
    f = para.get(name)
    if f is None:
        return None
    value = f.value.strip()
    if not regex.match(value):
        raise FleetError(f"{where}:{f.line}: invalid {name}: {safe(value)!r}")
    return value


def _profile(para: Paragraph, base: str) -> Profile:
    where = para.path
    profile_f = para.get("Profile")
    if profile_f is not None and DEBCI_ARCH_SEP in profile_f.value:
        raise FleetError(
            f"{where}:{profile_f.line}: invalid Profile: {safe(profile_f.value.strip())!r}: no"
            f" '{DEBCI_ARCH_SEP}' in a name (debci's architecture ARCH+PROFILE has exactly one)"
        )
    name = _one_word(para, "Profile", NAME_RE, where)
    if name is None:
        raise FleetError(f"{where}:{para.line}: a stanza without Profile:")
    unknown = [f.name for f in para.fields if string.capwords(f.name) not in KNOWN_FIELDS]
    if unknown:
        raise FleetError(
            f"{where}:{para.line}: profile {name}: unknown field {safe(unknown[0])}"
            f" (known: {', '.join(sorted(KNOWN_FIELDS))})"
        )
    arch = _one_word(para, "Architecture", ARCH_RE, where)
    if arch is None:
        raise FleetError(f"{where}:{para.line}: profile {name}: no Architecture:")
    ordinary_f = para.get("Ordinary")
    ordinary = False
    if ordinary_f is not None:
        value = ordinary_f.value.strip().lower()
        if value not in ("yes", "no"):
            raise FleetError(f"{where}:{ordinary_f.line}: Ordinary: is yes or no")
        ordinary = value == "yes"
    default_backend = ORDINARY_BACKEND if ordinary else HARDWARE_BACKEND
    backend = _one_word(para, "Backend", BACKEND_RE, where) or default_backend
    inv_f = para.get("Inventory")
    inventory: str | None = None
    if inv_f is not None and inv_f.value.strip():
        value = inv_f.value.strip()
        inventory = value if value == DETECT else os.path.normpath(os.path.join(base, value))
    elif not ordinary:
        raise FleetError(
            f"{where}:{para.line}: profile {name}: no Inventory: (a saved 'detect --json'"
            " or 'detect')"
        )
    hosts_f = para.get("Hosts")
    hosts = tuple(t.text for t in hosts_f.tokens()) if hosts_f else ()
    for h in hosts:
        if not HOST_RE.match(h):
            raise FleetError(f"{where}:{para.line}: profile {name}: invalid host {safe(h)!r}")
    desc_f = para.get("Description")
    arch_f = para.get("Architecture")
    return Profile(
        name=name,
        arch=arch,
        backend=backend,
        ordinary=ordinary,
        inventory_path=inventory,
        hosts=hosts,
        description=safe(desc_f.value.strip()) if desc_f else "",
        line=para.line,
        arch_line=arch_f.line if arch_f else 0,
    )


def read_fleet(path: str, scheme: str = TAGGED) -> Fleet:
    """Read and check a fleet file; raise FleetError with file and line.

    ``scheme`` (one of :data:`QUEUE_SCHEMES`) is how the fleet's debci
    workers take a profile's jobs, which names the profiles' queues.
    """
    if scheme not in QUEUE_SCHEMES:
        known = ", ".join(QUEUE_SCHEMES)
        raise FleetError(f"unknown queue scheme {safe(scheme)!r} (known: {known})")
    try:
        doc = read_paragraphs(path)
    except ControlError as exc:
        raise FleetError(f"fleet file {exc}") from None
    if doc.stopped_at is not None:
        raise FleetError(f"{path}:{doc.stopped_at}: a stanza without fields ends the file here")
    if doc.ignored_lines:
        raise FleetError(f"{path}:{doc.ignored_lines[0]}: neither a field nor a continuation")
    if not doc.paragraphs:
        raise FleetError(f"{path}: no profiles")
    if len(doc.paragraphs) > MAX_PROFILES:
        raise FleetError(f"{path}: more than {MAX_PROFILES} profiles")
    base = os.path.dirname(os.path.abspath(path))
    profiles = [dataclasses.replace(_profile(p, base), scheme=scheme) for p in doc.paragraphs]
    names: dict[str, Profile] = {}
    queues: dict[str, Profile] = {}
    for p in profiles:
        if p.name in names:
            raise FleetError(
                f"{path}:{p.line}: profile {p.name} is already defined at line {names[p.name].line}"
            )
        if p.queue in queues:
            raise FleetError(
                f"{path}:{p.line}: profiles {queues[p.queue].name} and {p.name} share the queue"
                f" {p.queue}"
            )
        names[p.name] = p
        queues[p.queue] = p
    return Fleet(os.path.abspath(path), tuple(profiles))


def fleet_path(given: str | None) -> str:
    """--fleet, else $AUTOPKGTEST_HW_FLEET, else /etc/autopkgtest-hw/fleet."""
    return given or os.environ.get(ENV_FLEET) or DEFAULT_FLEET


#: What must agree between a profile's saved inventory and the worker's hardware.
_COMPARED = IDENTIFYING_FIELDS


def check_host(saved: Inventory, actual: Inventory, profile: Profile) -> list[str]:
    """Where this machine falls short of what its profile promises the router.

    A worker that advertises hardware it does not have takes jobs it can only
    fail (rocm-team/debci#10): every saved device must be here, with the same
    identity (UUID or PCI address) and the same facts the specs look at.
    """
    problems = []
    if actual.cpu.arch and actual.cpu.arch != profile.arch:
        problems.append(
            f"this machine is {safe(actual.cpu.arch)}, profile {profile.name} is {profile.arch}"
        )
    by_ident = {d.ident: d for d in actual.devices}
    for want in saved.devices:
        have = by_ident.get(want.ident)
        if have is None:
            problems.append(f"{safe(want.label)} ({safe(want.ident)}) is missing here")
            continue
        for key in _COMPARED:
            w, h = getattr(want, key), getattr(have, key)
            if w is not None and w != h:
                problems.append(
                    f"{safe(want.label)} ({safe(want.ident)}): {key} is {safe(h)},"
                    f" the profile says {safe(w)}"
                )
        missing = set(want.classes) - set(have.classes)
        if missing:
            problems.append(
                f"{safe(want.label)} ({safe(want.ident)}): not {', '.join(sorted(missing))} here"
            )
    return problems
