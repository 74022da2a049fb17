"""Shared helpers of the test suite (tests/README.md tells how to run it).

* ``build_program(name)`` compiles ``tests/programs/<name>.c`` with the system gcc
  (``-O2 -static -pthread -Wall``; never -mavx or -march=native: the engine does not
  emulate AVX) into ``build/test-programs/`` at the repository root.  Binaries are keyed
  by a hash of the source, of every header it could include (the ``*.h`` of
  tests/programs and of its ``-I`` directories), the flags and the gcc version, so each
  one is built once and reused across runs.  Without gcc (or without a static C library)
  the test is skipped.
* ``run_native(path, args, env)`` and ``run_emu(path, args, cpus=..., extra=[...])``
  return ``(returncode, stdout, stderr)``; both use a generous timeout so that a hang
  fails its test instead of blocking CI.
* ``guest_env(**overrides)`` is the environment both are given by default: the test
  process's own, without any ``UEMU_*`` variable, with ``src/`` on PYTHONPATH so that
  ``python -m uintr_emu`` works from a plain checkout.
* ``describe(result)`` is the assertion message for such a result, and
  ``assert_one_error_line(result, *words)`` checks a rejected command line (status 2,
  one ``uintr-emu: error: ...`` line).
* ``golden.check(name, actual, message)`` compares with ``tests/golden/<name>``; with
  ``pytest --update-golden`` it rewrites the file instead.
* ``native_status()`` says whether the native fast path is loaded; tests marked
  ``requires_native`` are skipped under UINTR_EMU_NATIVE=0 and fail if it is missing.

Each helper is also a session fixture of the same name (run_cli too), and
``native_result`` caches native runs for the session.  Test modules use the fixtures
rather than ``from conftest import ...``: tests/hw has a conftest.py of its own, and
pytest keeps only one module named ``conftest`` in sys.modules.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAMS_DIR = REPO_ROOT / "tests" / "programs"
BUILD_DIR = REPO_ROOT / "build" / "test-programs"
EXAMPLES_DIR = REPO_ROOT / "examples"

#: Seconds before a guest run is abandoned (the test then fails, it does not hang).
EMU_TIMEOUT = 120.0
NATIVE_TIMEOUT = 60.0

#: Base flags of every test program.  No -mavx / -march=native, on purpose.
BASE_CFLAGS = ("-O2", "-pthread", "-Wall")
#: Programs that need libm.
NEEDS_LIBM = frozenset({"compute"})

Result = tuple[int, bytes, bytes]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden with the actual output instead of "
        "failing where they differ (the rewritten files are listed at the end)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a guest program of 10-50 M instructions; deselect with -m 'not slow'",
    )
    config.addinivalue_line(
        "markers",
        "requires_native: needs the native fast path; skipped only under UINTR_EMU_NATIVE=0, "
        "an error if the library is missing otherwise",
    )
    config.stash[GOLDEN_KEY] = Golden(update=config.getoption("update_golden"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"uintr-emu native fast path: {native_status()[0]}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("requires_native") is None:
        return
    state, message = native_status()
    if state == "disabled":
        pytest.skip(message)
    if state != "built":
        pytest.fail(message, pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state, message = native_status()
    if state not in ("built", "disabled"):
        terminalreporter.section(f"native fast path {state.upper()}", red=True, bold=True)
        terminalreporter.write_line(message)
    golden = config.stash[GOLDEN_KEY]
    if golden.update:
        terminalreporter.section("--update-golden")
        for path in golden.rewritten:
            terminalreporter.write_line(f"rewrote {path.relative_to(REPO_ROOT)}")
        terminalreporter.write_line(
            f"{len(golden.rewritten)} of the {len(golden.compared)} golden files compared "
            "rewritten; review them with git diff tests/golden"
        )


# --------------------------------------------------------------------------- native fast path


def native_status() -> tuple[str, str]:
    """("built" | "disabled" | "missing" | "broken", why): is uintr_emu's native fast path
    loaded?

    Only UINTR_EMU_NATIVE=0 may turn it off: a missing library (a failed or skipped build)
    fails tests/test_native_built.py and every test marked requires_native.
    """
    try:
        # Not at module level: the conftest must load even where the package does not.
        from uintr_emu.engine import native
    except Exception as exc:
        return "broken", f"uintr_emu.engine.native does not import: {type(exc).__name__}: {exc}"
    if native.available():
        return "built", "the native fast path is loaded"
    if os.environ.get("UINTR_EMU_NATIVE") == "0":
        return "disabled", "the native fast path is disabled by UINTR_EMU_NATIVE=0"
    package = Path(native.__file__).resolve().parent.parent
    found = sorted(p.name for p in package.glob("_fastpath*")) or "none"
    return "missing", (
        "the native fast path is not built: uintr_emu.engine.native.available() is False "
        f"(_fastpath* files in {package}: {found}).  setup.py builds it from "
        "src/uintr_emu/native/fastpath.c at install: reinstall (`make clean test`, or "
        "`.venv/bin/pip install -e .` and read its output), or set UINTR_EMU_NATIVE=0 to test "
        "without it on purpose."
    )


# --------------------------------------------------------------------------- golden files

GOLDEN_DIR = REPO_ROOT / "tests" / "golden"


class Golden:
    """Comparisons with the expected outputs under tests/golden (the ``golden`` fixture).

    ``check(name, actual, message)`` asserts that ``actual`` (str: compared with the file's
    text; bytes: with its bytes) is the content of ``tests/golden/<name>``.  Under
    --update-golden it writes ``actual`` to the file instead and passes, unless another test
    of the same session wrote something else to the same file (two outputs cannot both be
    the golden one: the test then fails).
    """

    def __init__(self, update: bool) -> None:
        self.update = update
        self.compared: dict[Path, bytes] = {}  # under --update-golden: what each file got
        self.rewritten: list[Path] = []

    def path(self, name: str | os.PathLike[str]) -> Path:
        return GOLDEN_DIR / name

    def read(self, name: str | os.PathLike[str]) -> str:
        return self.path(name).read_text()

    def check(self, name: str | os.PathLike[str], actual: str | bytes, message: str = "") -> None:
        path = self.path(name)
        if not self.update:
            expected = path.read_bytes() if isinstance(actual, bytes) else path.read_text()
            if message:
                assert actual == expected, message
            else:
                assert actual == expected
            return
        data = actual if isinstance(actual, bytes) else actual.encode()
        earlier = self.compared.setdefault(path, data)
        if earlier != data:
            pytest.fail(
                f"--update-golden: {path.relative_to(REPO_ROOT)} was written by an earlier test "
                f"of this run with a different output; not rewritten again.\n"
                f"earlier:\n{earlier.decode(errors='replace')}\n"
                f"this test:\n{data.decode(errors='replace')}\n{message}",
                pytrace=False,
            )
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.rewritten.append(path)


GOLDEN_KEY = pytest.StashKey[Golden]()


# --------------------------------------------------------------------------- checking results

#: How the command line reports a usage or input error (exit status 2).
ERROR_PREFIX = "uintr-emu: error: "


def describe(result: Result) -> str:
    """An assertion message showing a run: exit status and the tails of stdout and stderr."""
    rc, out, err = result
    return (
        f"exit status {rc}\n--- stdout (tail) ---\n{out[-3000:].decode(errors='replace')}"
        f"\n--- stderr (tail) ---\n{err[-2500:].decode(errors='replace')}"
    )


def assert_one_error_line(result: Result, *must_contain: str) -> str:
    """Exit status 2, nothing on stdout, exactly one stderr line 'uintr-emu: error: ...'
    containing each of ``must_contain`` (ignoring case), and neither a Python traceback nor an
    "internal error".  Returns that line."""
    rc, out, err = result
    assert b"Traceback" not in err, describe(result)
    assert b"internal error" not in err, describe(result)
    assert rc == 2, f"expected exit status 2\n{describe(result)}"
    assert out == b"", f"expected nothing on stdout\n{describe(result)}"
    lines = err.decode(errors="replace").splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr\n{describe(result)}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), f"expected {ERROR_PREFIX!r}...: {line!r}"
    for text in must_contain:
        assert text.lower() in line.lower(), f"expected {text!r} in {line!r}"
    return line


# --------------------------------------------------------------------------- building


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the guest test programs")
    return gcc


@functools.cache
def _gcc_version(gcc: str) -> str:
    proc = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout


@functools.cache
def _static_link_problem(gcc: str) -> str | None:
    """None if gcc can link a static C program, else why not."""
    _prepare_build_dir()
    src = BUILD_DIR / f"probe-{os.getpid()}.c"
    out = BUILD_DIR / f"probe-{os.getpid()}"
    src.write_text("int main(void) { return 0; }\n")
    try:
        proc = subprocess.run(
            [gcc, "-static", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        src.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    if proc.returncode != 0:
        return f"gcc cannot link a static program (is libc6-dev installed?): {proc.stderr[-500:]}"
    return None


def _prepare_build_dir() -> None:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    ignore = BUILD_DIR / ".gitignore"
    if not ignore.exists():
        # Keeps the cache out of git even without a top-level .gitignore entry.
        ignore.write_text("*\n")


#: A binary of an earlier version of a program is deleted once it has not been used for this
#: long.  Every use refreshes a binary's mtime, so a concurrent run never loses a binary it is
#: using, and variants of one program built with different flags coexist.
PRUNE_AFTER_SECONDS = 24 * 3600
HEX = frozenset("0123456789abcdef")


def _prune_old_builds(current: Path) -> None:
    """Remove binaries (and abandoned temporary files) of the same program and variant that
    have not been used for PRUNE_AFTER_SECONDS."""
    prefix = current.name[: -len("-0123456789abcdef")]
    cutoff = time.time() - PRUNE_AFTER_SECONDS
    for path in BUILD_DIR.glob(f"{prefix}-*"):
        digest = path.name[len(prefix) + 1 :].split(".tmp-")[0]
        if path == current or len(digest) != 16 or any(c not in HEX for c in digest):
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass  # another run pruned it first


#: Options naming a directory of headers: the digest of a program covers every *.h there.
INCLUDE_DIR_FLAGS = ("-I", "-iquote")
#: Options that would bring in headers the digest could not see.
UNHASHED_INCLUDE_FLAGS = ("-include", "-imacros", "-isystem", "-idirafter", "-iprefix")


@functools.cache
def _headers_digest(directory: Path) -> bytes:
    """A digest of the names and contents of every *.h directly in ``directory``."""
    digest = hashlib.sha256()
    for header in sorted(directory.glob("*.h")):
        digest.update(header.name.encode() + b"\0" + header.read_bytes() + b"\0")
    return digest.digest()


def _include_dirs(cflags: Sequence[str]) -> list[Path]:
    """tests/programs (where gcc finds a program's own "..." headers) and each -I/-iquote
    directory of ``cflags``."""
    dirs = [PROGRAMS_DIR]
    it = iter(cflags)
    for flag in it:
        if flag.startswith(UNHASHED_INCLUDE_FLAGS):
            raise ValueError(f"build_program cannot hash the headers of {flag!r}; use -I")
        for option in INCLUDE_DIR_FLAGS:
            if flag == option:
                dirs.append(Path(next(it)))
            elif flag.startswith(option):
                dirs.append(Path(flag[len(option) :]))
    return dirs


def program_digest(src: Path, cflags: Sequence[str], libs: Sequence[str], gcc: str) -> str:
    """The cache key of a binary: its source, every header it can include from the
    repository (all *.h of tests/programs and of its -I directories, a superset of what it
    does include), the flags and the gcc version."""
    digest = hashlib.sha256()
    digest.update(src.read_bytes())
    for directory in _include_dirs(cflags):
        digest.update(_headers_digest(directory.resolve()))
    digest.update("\0".join([*cflags, "|", *libs]).encode())
    digest.update(_gcc_version(gcc).encode())
    return digest.hexdigest()[:16]


_built: dict[tuple[str, tuple[str, ...], bool], Path] = {}


def build_program(name: str, extra_flags: Sequence[str] = (), *, static: bool = True) -> Path:
    """Compile tests/programs/<name>.c once; return the path of the binary.

    ``static=False`` builds a dynamically linked program (for the error tests).
    """
    key = (name, tuple(extra_flags), static)
    if key in _built and _built[key].exists():
        return _built[key]

    gcc = _gcc()
    src = PROGRAMS_DIR / f"{name}.c"
    if not src.is_file():
        raise FileNotFoundError(src)
    cflags = [*BASE_CFLAGS, *(["-static"] if static else []), *extra_flags]
    libs = ["-lm"] if name in NEEDS_LIBM else []
    digest = program_digest(src, cflags, libs, gcc)
    out = BUILD_DIR / f"{name}{'' if static else '-dynamic'}-{digest}"

    try:
        os.utime(out)  # in use: not pruned by a concurrent run
    except FileNotFoundError:
        problem = _static_link_problem(gcc)
        if problem is not None:
            pytest.skip(problem)
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        proc = subprocess.run(
            [gcc, *cflags, "-o", str(tmp), str(src), *libs],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            pytest.fail(f"compiling {src.name} failed:\n{proc.stderr}", pytrace=False)
        os.replace(tmp, out)  # atomic: safe if several test processes build at once
    _prune_old_builds(out)
    _built[key] = out
    return out


# --------------------------------------------------------------------------- running


#: The UINTR_EMU_* variables that are not options (UINTR_EMU_CPUS and the like would change
#: every run): the native fast path switch and the traceback switch.
KEPT_UINTR_EMU_VARS = ("UINTR_EMU_NATIVE", "UINTR_EMU_DEBUG")


def guest_env(**overrides: str | None) -> dict[str, str]:
    """The host environment for a run (no UEMU_* variables, no UINTR_EMU_* option variables);
    None in overrides unsets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UEMU_")
           and (not k.startswith("UINTR_EMU_") or k in KEPT_UINTR_EMU_VARS)}  # fmt: skip
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(cmd: list[str], env: Mapping[str, str] | None, timeout: float, what: str) -> Result:
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=dict(env) if env is not None else guest_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"")[-2000:].decode(errors="replace")
        pytest.fail(
            f"{what} did not finish within {timeout:.0f} s: {' '.join(cmd)}\n"
            f"stderr (tail):\n{stderr}",
            pytrace=False,
        )
    return proc.returncode, proc.stdout, proc.stderr


def run_native(
    path: os.PathLike[str] | str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = NATIVE_TIMEOUT,
) -> Result:
    """Run a program directly on the host."""
    return _run([str(path), *args], env, timeout, "native run")


def emu_command(
    path: os.PathLike[str] | str,
    args: Sequence[str] = (),
    cpus: int = 4,
    extra: Sequence[str] = (),
) -> list[str]:
    return [sys.executable, "-m", "uintr_emu", "run", "--cpus", str(cpus), *extra, str(path), *args]


def run_emu(
    path: os.PathLike[str] | str,
    args: Sequence[str] = (),
    cpus: int = 4,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = EMU_TIMEOUT,
) -> Result:
    """Run a program under the emulator (``python -m uintr_emu run --cpus N ...``)."""
    return _run(emu_command(path, args, cpus, extra), env, timeout, "emulator run")


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = EMU_TIMEOUT
) -> Result:
    """Run ``python -m uintr_emu ARGS...`` as given (for the command-line tests)."""
    return _run([sys.executable, "-m", "uintr_emu", *args], env, timeout, "uintr-emu")


# --------------------------------------------------------------------------- fixtures


def _returning(helper):
    """A session fixture named like ``helper`` whose value is ``helper`` itself."""

    def fixture():
        return helper

    return pytest.fixture(scope="session", name=helper.__name__)(fixture)


_build_program_fixture = _returning(build_program)
_run_native_fixture = _returning(run_native)
_run_emu_fixture = _returning(run_emu)
_run_cli_fixture = _returning(run_cli)
_guest_env_fixture = _returning(guest_env)
_describe_fixture = _returning(describe)
_assert_one_error_line_fixture = _returning(assert_one_error_line)
_native_status_fixture = _returning(native_status)


@pytest.fixture(scope="session")
def golden(pytestconfig: pytest.Config) -> Golden:
    """The session's Golden: ``golden.check("uintr/wait.next.out", stdout, message)``."""
    return pytestconfig.stash[GOLDEN_KEY]


@pytest.fixture(scope="session")
def native_result():
    """``native_result(name, args=(), env=None, key=None)``: the native run, once per session.

    ``key`` replaces ``args`` in the cache key (for arguments such as a temporary
    directory that differ between calls but not in meaning).
    """
    cache: dict[tuple, Result] = {}

    def get(
        name: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        key: object = None,
    ) -> Result:
        cache_key = (
            name,
            tuple(args) if key is None else ("key", key),
            tuple(sorted(env.items())) if env is not None else None,
        )
        if cache_key not in cache:
            cache[cache_key] = run_native(build_program(name), args, env)
        return cache[cache_key]

    return get
