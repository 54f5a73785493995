"""Messages: autopkgtest's style on stderr for the commands, plain logging when embedded."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from autopkgtest_hw.base import log


@pytest.fixture
def restore_log() -> Iterator[None]:
    yield
    log.setup("autopkgtest-hw")


def test_messages_in_autopkgtests_style_on_stderr(
    capsys: pytest.CaptureFixture[str], restore_log: None
) -> None:
    log.setup("autopkgtest-virt-hwgpu")
    log.info("allocated: nothing")
    log.warning("careful")
    log.error("broken")
    log.debug("hidden without -d")
    assert capsys.readouterr().err.splitlines() == [
        "autopkgtest-virt-hwgpu: allocated: nothing",
        "autopkgtest-virt-hwgpu: warning: careful",
        "autopkgtest-virt-hwgpu: error: broken",
    ]
    log.setup("autopkgtest-hw", debug=True)
    assert log.debugging()
    log.debug("shown with -d")
    assert capsys.readouterr().err == "autopkgtest-hw: debug: shown with -d\n"


def test_an_embedding_program_gets_the_records_in_its_own_logging(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, restore_log: None
) -> None:
    log.embed()
    with caplog.at_level(logging.INFO, logger="autopkgtest_hw"):
        log.info("testbed device: none")
        log.error("passthrough failed")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "testbed device: none"),
        (logging.ERROR, "passthrough failed"),
    ]
    assert capsys.readouterr().err == ""  # not printed a second time by us
