"""The Python API: docs/api.md's example runs as written; Machine's pieces in isolation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from uintr_emu import Machine, Options
from uintr_emu.api import ProgramError

ROOT = Path(__file__).resolve().parents[1]


def test_docs_api_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"thread \d+ sent vector 0 from CPU \d", out)
    assert re.search(r"CPU \d delivered it \d+ instructions later", out)


def test_capture_output_and_status() -> None:
    m = Machine(Options(cpus=1))
    m.load(str(ROOT / "examples/bin/threads_demo"), ["threads_demo"], [], capture_output=True)
    r = m.run()
    assert r.status == 0
    assert r.stdout.endswith(b"Success\n")
    assert r.stderr == b""


def test_limits_through_the_api() -> None:
    m = Machine(Options(cpus=2, max_insns=100_000))
    m.load(str(ROOT / "examples/bin/pingpong"), ["pingpong", "100000"], capture_output=True)
    r = m.run()
    assert r.status == 124
    assert b"instruction limit" in r.stderr


def test_task_limits_through_the_api(build_program) -> None:
    """Options(max_threads=..., max_procs=...) are the CLI's --max-threads / --max-procs."""
    limits = str(build_program("limits"))
    m = Machine(Options(cpus=2, max_procs=3))
    m.load(limits, ["limits", "procs"], capture_output=True)
    r = m.run()
    assert (r.status, r.stdout) == (0, b"procs: 2 forked, then EAGAIN; all reaped\n"), r
    assert r.stderr.startswith(b"uintr-emu: process limit reached (--max-procs 3): "), r
    m = Machine(Options(cpus=1, max_threads=2))
    m.load(limits, ["limits", "nproc"], capture_output=True)
    assert m.run().stdout == b"nproc: soft 2 hard 2\n"


def test_load_errors_raise_program_error(tmp_path: Path) -> None:
    bad = tmp_path / "notelf"
    bad.write_text("hello")
    with pytest.raises(ProgramError, match="not executable"):  # EACCES comes first (execve)
        Machine().load(str(bad))
    bad.chmod(0o755)
    with pytest.raises(ProgramError, match="not an ELF"):
        Machine().load(str(bad))


def test_threads_before_run_show_initial_uintr_state() -> None:
    m = Machine(Options(cpus=2))
    m.load(str(ROOT / "examples/bin/uipi_demo"), capture_output=True)
    (t,) = m.threads()
    assert t.state == "runnable" and not t.receiver and t.uintr.uirr == 0 and not t.uintr.uif
    assert os.path.exists(ROOT / "examples/bin/uipi_demo")
