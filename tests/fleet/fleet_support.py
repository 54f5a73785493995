"""Real debci workers for tests: Debian's debci-worker, our hwgpu backend, per-worker config.

Each worker is /usr/share/debci's own debci-worker, run from a copy of debci's
tree (bin, lib and backends copied as they are, plus this checkout's
debci/backends/hwgpu), so the hwgpu backend sits where debci looks for
backends without touching /usr/share/debci.  Its configuration directory
(``debci_config_dir``) points it at the test broker, its own data and lock
directories, and the hwgpu settings of its profile.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from ..e2e.fixtures import write_shell_tests

ROOT = Path(__file__).resolve().parent.parent.parent
DEBCI = Path("/usr/share/debci")
VENV_BIN = Path(sys.executable).parent
ARCH = subprocess.run(
    ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
).stdout.strip()
RESULTS_QUEUE = "debci_results"
#: Bound for anything we wait for (a worker to consume, a result to arrive).
WITHIN = 240.0
STATUS = {0: "pass", 2: "pass", 4: "fail", 6: "fail", 12: "fail", 14: "fail", 8: "neutral"}


def debci_status(exitcode: int) -> str:
    """debci-worker's own mapping of autopkgtest's exit code."""
    return STATUS.get(exitcode, "tmpfail")


def make_debci_tree(dest: Path) -> Path:
    """debci's tree with this checkout's hwgpu backend (never an installed one)."""
    ignore = shutil.ignore_patterns("hwgpu")
    for sub in ("bin", "lib", "backends"):
        shutil.copytree(DEBCI / sub, dest / sub, symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "debci" / "backends" / "hwgpu", dest / "backends" / "hwgpu")
    return dest


class CentralDebci:
    """debci's central host: configuration, its database (migrated), and on demand
    its own collector and web app (``rackup`` of debci's config.ru) on loopback."""

    def __init__(self, base: Path, broker_url: str, arch_list: list[str]) -> None:
        self.config = base / "config"
        self.data = base / "data"
        self.config.mkdir(parents=True)
        self.data.mkdir()
        conf = {
            "debci_amqp_server": broker_url,
            "debci_data_basedir": str(self.data),
            "debci_arch": ARCH,
            "debci_arch_list": " ".join(arch_list),
            "debci_suite": "unstable",
            "debci_backend": "hwgpu",
            # debci 4.4 shows its pages to logged-in users only, unless this.
            "debci_public_browsing": "true",
        }
        (self.config / "debci.conf").write_text("".join(f"{k}='{v}'\n" for k, v in conf.items()))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = 0
        self.run("migrate")

    def env(self) -> dict[str, str]:
        e = env()
        e["debci_config_dir"] = str(self.config)
        return e

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["debci", *args], env=self.env(), capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def ruby(self, code: str) -> str:
        """debci's own model, as its CLI programs use it."""
        proc = subprocess.run(
            ["ruby", "-e", code], env=self.env(), capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def _start(self, argv: list[str], name: str) -> None:
        with open(self.data.parent / f"{name}.log", "wb") as out:
            self.procs.append(
                subprocess.Popen(
                    argv,
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.data.parent,
                )
            )

    def log(self, name: str) -> str:
        return (self.data.parent / f"{name}.log").read_text(errors="replace")

    def start_collector(self) -> None:
        self._start(["debci", "collector"], "collector")

    def start_web(self) -> None:
        from .broker_support import free_port

        self.port = free_port()
        argv = [
            "rackup",
            "-E",
            "production",
            "-o",
            "127.0.0.1",
            "-p",
            str(self.port),
            str(DEBCI / "config.ru"),
        ]
        self._start(argv, "web")
        wait_for("debci's web app answers", lambda: self._answers())

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        assert self.procs[-1].poll() is None, self.log("web")[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/auth", timeout=5):
                pass
        except urllib.error.HTTPError as exc:
            exc.close()  # (an unclosed one is a ResourceWarning, an error under pytest)
            return True
        except OSError:
            return False
        return True

    def http(self, path: str, *, key: str | None = None, post: bool = False) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=b"" if post else None
        )
        if key:
            req.add_header("Auth-Key", key)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, exc.read().decode(errors="replace")
            finally:
                exc.close()

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _wait_group_gone(proc.pid)
        self.procs = []


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(VENV_BIN / "autopkgtest-hw"), *args],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}:{ROOT / 'virt-server'}:{e.get('PATH', '')}"
    e.pop("AUTOPKGTEST_HW_DETECTORS", None)
    return e


class Worker:
    """One real debci-worker process (in its own session, so it can be killed whole)."""

    def __init__(
        self,
        tree: Path,
        base: Path,
        name: str,
        broker_url: str,
        *,
        tag: str | None,
        settings: dict[str, str],
        options: list[str] | None = None,
    ) -> None:
        """``tag``: debci-worker --tag (debci 3); ``options``: what ``autopkgtest-hw
        profile --worker-options`` prints for this debci (--tag or --arch ARCH+PROFILE)."""
        self.name = name
        self.tag = tag
        self.dir = base / name
        (self.dir / "config").mkdir(parents=True)
        (self.dir / "data").mkdir()
        (self.dir / "lock").mkdir()
        conf = {
            "debci_amqp_server": broker_url,
            "debci_arch": ARCH,
            "debci_suite": "unstable",
            "debci_backend": "hwgpu",
            "debci_data_basedir": str(self.dir / "data"),
            "debci_lock_dir": str(self.dir / "lock"),
            **settings,
        }
        (self.dir / "config" / "debci.conf").write_text(
            "".join(f"{k}='{v}'\n" for k, v in conf.items())
        )
        self.log = self.dir / "worker.log"
        e = env()
        e["debci_config_dir"] = str(self.dir / "config")
        argv = [str(tree / "bin" / "debci-worker")]
        if options is not None:
            argv += options
        elif tag:
            argv += ["--tag", tag]
        with open(self.log, "ab") as out:  # O_APPEND: the backend adds its lines too
            self.proc = subprocess.Popen(
                argv,
                env=e,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.dir,
            )
        # debci >= 3.7: the worker leaves its results in a directory and
        # debci-publisher (a daemon of its own on each worker host) sends them.
        self.publisher: subprocess.Popen[bytes] | None = None
        publisher = tree / "bin" / "debci-publisher"
        if publisher.exists():
            with open(self.dir / "publisher.log", "ab") as out:
                self.publisher = subprocess.Popen(
                    [str(publisher)],
                    env=e,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.dir,
                )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the worker and everything it started (autopkgtest included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _wait_group_gone(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
        _wait_group_gone(self.proc.pid)
        if self.publisher is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.publisher.pid, signal.SIGKILL)
            self.publisher.wait()
            _wait_group_gone(self.publisher.pid)


def _group_running(pgid: int) -> bool:
    """A process of the group is still running (zombies do not count: in a PID
    namespace whose init is pytest, an orphan is never reaped)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if not _group_running(pgid):
            return
        time.sleep(0.1)


# -- the broker, seen from the tests --------------------------------------------


def channel(url: str):  # type: ignore[no-untyped-def]
    import pika

    return pika.BlockingConnection(pika.URLParameters(url))


def consumers(url: str, queue: str) -> int:
    import pika.exceptions

    conn = channel(url)
    try:
        ch = conn.channel()
        try:
            return int(ch.queue_declare(queue, passive=True).method.consumer_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        conn.close()


def wait_for(what: str, check, within: float = WITHIN) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"never happened: {what}")


def wait_consumers(url: str, queue: str, n: int, workers: list[Worker]) -> None:
    def ready() -> bool:
        for w in workers:
            assert w.alive(), f"worker {w.name} died:\n{w.text()[-3000:]}"
        return consumers(url, queue) >= n

    wait_for(f"{n} consumer(s) on {queue}", ready)


@dataclass
class Result:
    package: str
    exitcode: int
    worker: str
    profile: str | None
    log: str
    summary: str

    @property
    def status(self) -> str:
        return debci_status(self.exitcode)


def parse_result(body: bytes) -> Result:
    """One debci result tarball, as debci-worker publishes it to debci_results."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                files[member.name] = f.read()
    [exitcode_path] = [p for p in files if p.endswith("/exitcode")]
    rundir = exitcode_path.rsplit("/", 1)[0]
    package = rundir.split("/")[-2]

    def get(name: str) -> bytes | None:
        return files.get(f"{rundir}/{name}")

    import gzip

    log = get("log.gz")
    profile = get("hwgpu-profile")
    return Result(
        package=package,
        exitcode=int((get("exitcode") or b"-1").decode()),
        worker=(get("worker") or b"").decode().strip(),
        profile=profile.decode().strip() if profile else None,
        log=gzip.decompress(log).decode(errors="replace") if log else "",
        summary=(get("summary") or b"").decode(errors="replace"),
    )


def collect_results(url: str, n: int, within: float = WITHIN) -> list[Result]:
    """Take ``n`` results off debci's results queue (waiting for them)."""
    out: list[Result] = []
    conn = channel(url)
    try:
        ch = conn.channel()
        ch.queue_declare(RESULTS_QUEUE, durable=True)
        deadline = time.monotonic() + within
        while len(out) < n and time.monotonic() < deadline:
            method, _props, body = ch.basic_get(RESULTS_QUEUE, auto_ack=True)
            if method is None:
                time.sleep(0.5)
                continue
            out.append(parse_result(body))
    finally:
        conn.close()
    assert len(out) == n, f"{len(out)} of {n} results arrived: {[r.package for r in out]}"
    return out


def publish_raw(url: str, queue: str, body: bytes) -> None:
    import pika

    conn = channel(url)
    try:
        ch = conn.channel()
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


# -- packages --------------------------------------------------------------------


def make_package(
    parent: Path,
    name: str,
    tests: dict[str, tuple[str, str]],
    *,
    hwspec: str | None = None,
    architecture: str = "all",
) -> Path:
    """A source tree whose tests are shell scripts; tests: name -> (restrictions, script)."""
    src = parent / name
    (src / "debian" / "tests").mkdir(parents=True)
    field = f"XS-Requires-Hwspec: {hwspec}\n" if hwspec else ""
    (src / "debian" / "control").write_text(
        f"Source: {name}\nMaintainer: Test <test@example.org>\n{field}\n"
        f"Package: {name}\nArchitecture: {architecture}\nDescription: fleet test package\n"
        " Only has tests.\n"
    )
    (src / "debian" / "changelog").write_text(
        f"{name} (1.0) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- Test <test@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n"
    )
    (src / "debian" / "files").write_text("")  # a built tree: nothing to build
    write_shell_tests(src, {t: (r, textwrap.dedent(script)) for t, (r, script) in tests.items()})
    return src


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def save_cpu_inventory(path: Path) -> str:
    """An inventory with this machine's architecture and no device (an ordinary worker)."""
    return write_json(path, {"version": 1, "cpu": {"arch": ARCH, "cores": 2}, "devices": []})
