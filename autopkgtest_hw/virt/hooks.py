"""What the virt server adds to the inner server's replies.

After ``open``, ``revert`` and ``reboot`` it asks the inner server how to run
commands in the testbed (``print-execute-command``), probes the testbed and
checks that the passed devices arrived; the reply to ``capabilities`` gets
the ``hw:*``, ``hw-device=`` and ``hw-cpu=`` words of what arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from autopkgtest_hw.base import log
from autopkgtest_hw.base.text import escape
from autopkgtest_hw.spec.inventory import Device, Inventory
from autopkgtest_hw.spec.render import describe_device
from autopkgtest_hw.virt import probe
from autopkgtest_hw.virt.backends import Backend, Passthrough
from autopkgtest_hw.virt.proxy import ExecuteCommandSource, auxverb_of

#: The failure word of a reply to open/revert/reboot whose devices are not in the testbed.
PASSTHROUGH_FAILED = "hw-passthrough-failed"


class HardwareHooks:
    """A :data:`proxy.ReplyHook` that asks ``inner`` for ``print-execute-command``.

    ``inner`` may be asked nothing else: between a reply and the next
    command, that request is the only one the protocol allows the proxy.
    """

    def __init__(
        self,
        backend: Backend,
        devices: Sequence[Device],
        passthrough: Passthrough,
        inner: ExecuteCommandSource,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.backend = backend
        #: Put before every command autopkgtest runs in the testbed (keeper: the locks).
        self.command_prefix = list(command_prefix)
        self.devices = list(devices)
        self.passthrough = passthrough
        self.inner = inner
        self.testbed: Inventory | None = None  # what the open testbed has, once verified
        self.logged = False

    def __call__(self, command: str, words: list[str], reply: str) -> str:
        ok = reply.split()[:1] == ["ok"]
        if command in ("open", "revert", "reboot"):
            self.testbed = None
            if ok:
                return self._verify(command) or reply
        elif command == "close" and ok:
            self.testbed = None
        elif command == "print-execute-command" and ok and self.command_prefix:
            return self._prefixed(reply)
        elif command == "capabilities" and ok and self.testbed is not None:
            extra = " ".join(quote(w) for w in self.testbed.to_capabilities())
            return f"{reply} {extra}"
        return reply

    def _prefixed(self, reply: str) -> str:
        """The reply to print-execute-command, with the lock-holding prefix before its words."""
        words = reply.split()
        if len(words) < 2:
            return reply
        # Quoted twice, as VirtSubproc does: autopkgtest unquotes the reply word, splits
        # it at commas, then unquotes each piece (a comma in a piece must survive that).
        prefix = ",".join(quote(quote(w, safe="/"), safe="/") for w in self.command_prefix)
        return " ".join([words[0], f"{prefix},{words[1]}", *words[2:]])

    def _verify(self, command: str) -> str | None:
        """None if the testbed has the devices; else a failure reply."""
        if self.backend.testbed_is_host:
            result = probe.on_this_host(self.passthrough.nodes)
        else:
            auxverb_reply = self.inner.print_execute_command()
            words = auxverb_reply.split()
            if words[:1] != ["ok"] or len(words) < 2:
                return self._fail(command, [f"print-execute-command replied {auxverb_reply!r}"], [])
            auxverb = auxverb_of(words[1])
            try:
                result = probe.run(auxverb, self.passthrough.nodes)
            except probe.ProbeError as exc:
                return self._fail(command, [f"cannot look inside the testbed: {exc}"], [])
        present, problems = self.backend.verify(self.devices, result)
        foreign = result.foreign_gpu_nodes(self.passthrough.nodes)
        if foreign and self.backend.hides_other_nodes:
            # Issue 9, point 8: a testbed must not see a GPU that was not allocated.
            return self._fail(
                command,
                [f"the testbed sees GPU nodes that were not allocated: {', '.join(foreign)}"],
                [],
                what="sees devices that were not passed in",
            )
        if problems and self.backend.strict:
            lacking = [d.ident for d in self.devices if d not in present]
            return self._fail(command, problems, lacking)
        for p in problems:
            log.warning(f"not in the testbed, not advertised: {escape(p)}")
        self.testbed = Inventory(cpu=result.cpu, devices=tuple(present))
        if not self.logged or log.debugging():
            self.logged = True
            self._log_testbed(present)
        return None

    def _fail(
        self,
        command: str,
        problems: list[str],
        lacking: list[str],
        what: str = "lacks devices that were passed in",
    ) -> str:
        """Log what is wrong and why; the reply names the devices (autopkgtest shows it)."""
        log.error(f"after {command}: the testbed {what} ({self.passthrough.description}):")
        for p in problems:
            log.error(f"  {escape(p)}")
        log.error("this is a testbed failure (passthrough did not work), not a test failure")
        return " ".join([PASSTHROUGH_FAILED, *(quote(i, safe="/:") for i in lacking)])

    def _log_testbed(self, present: Sequence[Device]) -> None:
        assert self.testbed is not None
        cpu = self.testbed.cpu
        log.info(
            f"testbed CPU: {escape(cpu.model or 'unknown')}, {cpu.cores or '?'} logical CPUs,"
            f" {(cpu.memory or 0) // 2**20} MiB RAM, {cpu.arch or 'unknown arch'}"
        )
        if not present:
            log.info("testbed devices: none")
        for d in present:
            log.info(f"testbed device: {describe_device(d)}")
