"""The real-program corpus (issue 15): Debian's own programs run natively and under the
emulator, compared on stdout, stderr, exit status and the files they leave behind.

`make test` runs the quick subset (workloads marked quick); `UINTR_EMU_CORPUS=all` runs every
workload here, and `make corpus` runs them all with a report (tests/corpus/run.py). A workload
with a documented difference (`known`, listed in docs/linux.md "Real programs") is
xfail(strict=True): when a fix makes it match, the test fails until the mark is removed. A
workload whose program is not installed is skipped with the reason (`make corpus-deps`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corpus import deps, runner
from corpus.workloads import CORPUS, Workload

DOCS = Path(__file__).resolve().parents[1] / "docs" / "linux.md"
ALL = os.environ.get("UINTR_EMU_CORPUS") == "all"


def _params():
    for w in CORPUS:
        if ALL or w.quick:
            marks = [pytest.mark.xfail(strict=True, reason=w.known)] if w.known else []
            yield pytest.param(w, id=w.name, marks=marks)


@pytest.mark.parametrize("workload", _params())
def test_real_program_matches_native(workload: Workload) -> None:
    outcome = runner.run_workload(workload)
    if outcome.missing:
        pytest.skip(outcome.missing)
    assert not outcome.differences, f"{workload.name}:\n" + "\n".join(outcome.differences)


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_size_and_quick_subset() -> None:
    """Issue 15 asks for 150+ workloads; the quick subset keeps `make test` within minutes."""
    names = [w.name for w in CORPUS]
    assert len(names) == len(set(names)), "workload names must be unique"
    assert len(CORPUS) >= 150
    assert 30 <= sum(w.quick for w in CORPUS) <= 40


def test_every_needed_program_has_a_package() -> None:
    assert deps.needed() <= deps.PACKAGES.keys()


def test_every_known_difference_is_documented() -> None:
    """Each xfail names its cause, and docs/linux.md lists the workload."""
    text = DOCS.read_text()
    section = text[text.index("## Real programs") :]
    for w in CORPUS:
        if w.known:
            assert f"`{w.name}`" in section, f"{w.name} is not listed in docs/linux.md"


# --------------------------------------------------------------------------- the comparison


def _run(**kw) -> runner.Run:
    fields = {"status": 0, "stdout": b"x\n", "stderr": b"", "files": {"f": "file 0644 a"}}
    fields.update(kw)
    return runner.Run(seconds=1.0, **fields)


@pytest.mark.parametrize(
    "change, what",
    [
        ({"status": 1}, "exit status"),
        ({"stdout": b"y\n"}, "stdout"),
        ({"stderr": b"warning\n"}, "stderr"),
        ({"files": {"f": "file 0600 a"}}, "files left behind"),
        ({"files": {"f": "file 0644 a", "g": "dir 0755"}}, "files left behind"),
        ({"timed_out": True}, "did not end"),
    ],
)
def test_compare_reports_each_kind_of_difference(change: dict, what: str) -> None:
    assert runner.compare(_run(), _run()) == []
    found = runner.compare(_run(), _run(**change))
    assert len(found) == 1 and what in found[0], found


def test_fresh_directory_inputs_and_environment(tmp_path: Path) -> None:
    """Inputs are written with the fixed mtime and requested modes; the environment is the
    fixed one (nothing of the host's), plus the workload's own variables."""
    w = Workload("t", "true", files={"d/a": "text", "b": b"\0\1"}, executable=("b",),
                 env={"X": "1"})  # fmt: skip
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "stale").write_text("left from an earlier run")
    work, env = runner._fresh(tmp_path, w)
    assert sorted(p.name for p in work.rglob("*")) == ["a", "b", "d"]
    assert (work / "b").stat().st_mode & 0o777 == 0o755
    assert (work / "d" / "a").stat().st_mtime == runner.INPUT_MTIME
    assert env["X"] == "1" and env["LC_ALL"] == "C" and env["PATH"] == runner.PATH
    assert set(env) == {*runner.base_env(tmp_path, tmp_path), "X"}


def test_snapshot_records_types_modes_contents_and_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "f").write_bytes(b"\xff\x00")
    (tmp_path / "f").chmod(0o600)
    (tmp_path / "t.txt").write_text("hi")
    (tmp_path / "t.txt").chmod(0o644)
    (tmp_path / "l").symlink_to("f")
    snap = runner._snapshot(tmp_path, volatile=("t.*",))
    assert snap == {
        "d": "dir 0750",
        "f": "file 0600 ff00",
        "l": "symlink -> f",
        "t.txt": "file 0644 (content not compared)",
    }


def test_a_differing_workload_is_reported(tmp_path: Path) -> None:
    """The whole path on a real command: nproc on an emulated machine of another size than
    the host is found to differ, with the two outputs in the diff."""
    host = os.cpu_count() or 1
    cpus = 3 if host != 3 else 5
    outcome = runner.run_workload(Workload("nproc", argv=("nproc",), needs=("nproc",), cpus=cpus))
    assert len(outcome.differences) == 1, outcome.differences
    assert f"-{host}\n" in outcome.differences[0] and f"+{cpus}" in outcome.differences[0]
