"""cliopts.py: the run options defined once (docs/explore.md, "Options").

Parsing only (no guest runs): the table covers Options, its defaults are Options' defaults,
explore's replay arguments give `run` the same Options, and cli, explore and cliopts import
one another only one way.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uintr_emu import cliopts, explore
from uintr_emu.cli import build_parser
from uintr_emu.hw.cpu import CpuFeatures
from uintr_emu.options import Options

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "uintr_emu"

# Options fields that no command-line option sets (the API's own).
API_ONLY = {"warn_stream", "stdio", "fast_path"}  # (UINTR_EMU_NATIVE=0 is the CLI's fast_path)


def test_every_options_field_has_one_run_option():
    fields = [o.field for o in cliopts.RUN_OPTIONS if o.field]
    assert len(fields) == len(set(fields)), fields
    assert set(fields) == {f.name for f in dataclasses.fields(Options)} - API_ONLY


@pytest.mark.parametrize("command", ["run", "explore"])
def test_the_defaults_are_the_options_defaults(command):
    ns = build_parser().parse_args([command, "prog"])
    assert cliopts.options_from(ns) == Options()
    assert cliopts.run_args(ns) == []


@pytest.mark.parametrize("uintr", [False, True])
@pytest.mark.parametrize("flexible", [False, True])
def test_cpu_features_spec_round_trips(uintr, flexible):
    features = CpuFeatures(uintr=uintr, flexible_uiret=flexible)
    spec = cliopts.cpu_features_spec(features)
    assert CpuFeatures.parse(spec) == features
    assert (spec == "") == (features == CpuFeatures())


def test_a_value_that_reads_as_an_option_is_one_word():
    ns = build_parser().parse_args(["explore", "--cpu-features=-uintr", "-E-X=1", "-U", "Y", "p"])
    assert cliopts.run_args(ns) == ["--cpu-features=-uintr", "-E-X=1", "-U", "Y"]


def _maybe(flag: str, values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just([]), values.map(lambda v: [f"{flag}={v}"]))


def _repeated(flag: str, values: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(values, max_size=3).map(lambda vs: [w for v in vs for w in (flag, v)])


_explore_args = st.tuples(
    _maybe("--cpus", st.integers(1, 64)),
    _maybe("--cpu-features", st.sampled_from(["uintr", "-uintr", "+flexible-uiret",
                                              "-uintr,+flexible_uiret", "+uintr,-flexible-uiret"])),
    _maybe("--slice", st.integers(1, 10**7)),
    _maybe("--uintr-abi", st.sampled_from(["next", "rfc"])),
    _repeated("-E", st.from_regex(r"[A-Z_]{1,4}=[ -~]{0,6}", fullmatch=True)),
    _repeated("-U", st.from_regex(r"[A-Z_]{1,4}", fullmatch=True)),
    _maybe("--root", st.sampled_from(["/", str(ROOT), str(SRC / "..")])),
    _maybe("--max-memory", st.sampled_from(["4096", "64k", "512M", "1.5g"])),
    _maybe("--max-threads", st.integers(1, 10**5)),
    _maybe("--max-procs", st.integers(1, 1000)),
    _maybe("--max-insns", st.integers(1, 10**12)),
    _maybe("--timeout", st.floats(1e-3, 1e6).map(repr)),
)  # fmt: skip


@given(_explore_args, st.integers(0, 2**32))
def test_replay_args_give_run_the_same_options(parts, seed):
    """For any explore command line, `run --seed N` with its replay arguments runs seed N
    with the same Options and environment."""
    argv = [word for part in parts for word in part]
    ns = build_parser().parse_args(["explore", *argv, "prog", "arg"])
    job = explore._job_from(ns)
    run_ns = build_parser().parse_args(["run", "--seed", str(seed), *job.run_args, "prog", "arg"])
    assert cliopts.options_from(run_ns) == replace(job.options, seed=seed)
    assert cliopts.guest_environment(run_ns.setenv, run_ns.unsetenv) == job.env


def test_cliopts_and_explore_do_not_import_cli():
    code = (
        "import sys, uintr_emu.explore; "
        "assert 'uintr_emu.cli' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# (level, module) of the imports allowed inside functions (each commented as lazy).
LAZY_IMPORTS = {
    (1, "api"),
    (1, "cluster"),
    (1, "gdbstub"),
    (1, "trace.png"),
    (1, "trace.timeline"),
    (1, "trace.stats"),
    (0, "concurrent.futures"),
    (0, "subprocess"),
    (0, "multiprocessing"),
    (0, "traceback"),
}


@pytest.mark.parametrize("module", ["cli.py", "explore.py", "cliopts.py"])
def test_function_local_imports_are_only_the_lazy_ones(module):
    """Imports are at module level (no cycle to dodge); inside a function only what is slow to
    import and not needed by every command (the engine for --help, the trace writers and
    explore's pools for a plain run), commented as lazy."""
    path = SRC / module
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.ImportFrom):
                    level, name = node.level, node.module
                else:
                    level, name = 0, node.names[0].name
                assert (level, name) in LAZY_IMPORTS, (module, node.lineno)
                comment = lines[max(0, node.lineno - 3) : node.lineno]  # or just above
                assert any("lazy" in line for line in comment), (module, node.lineno)
