"""Running one corpus workload natively and under the emulator, and comparing the two runs.

Both runs of a workload use the same directory path (created afresh for each run, so nothing
of the first run is seen by the second), the same fixed environment and the same input files
with the same fixed mtime; they are compared on stdout, stderr, exit status and the files left
in the directory (names, types, permission bits, contents, symlink targets). HOME and TMPDIR
are fresh directories beside it that are not compared.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from corpus.workloads import Workload

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Debian's own binaries only (pyenv's python3 shim is a bash script).
PATH = "/usr/bin:/bin"
#: The inputs' mtime (2020-01-01T00:00:00Z): archives and gzip headers record it.
INPUT_MTIME = 1577836800
#: Seconds a native run may take before it counts as hung.
NATIVE_TIMEOUT = 60.0
#: What the emulator adds to a workload's own --timeout before the host gives up on it.
GRACE = 30.0


def base_env(home: Path, tmp: Path) -> dict[str, str]:
    """The environment of both runs: nothing of the host's. LC_ALL=C also keeps the
    emulator's own Python from coercing the C locale to C.UTF-8 (PEP 538), which would add
    LC_CTYPE to the guest's environment."""
    return {
        "PATH": PATH,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C",
        "LC_ALL": "C",
        "TZ": "UTC",
        "USER": "corpus",
        "LOGNAME": "corpus",
        "SHELL": "/bin/sh",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass
class Run:
    status: int
    stdout: bytes
    stderr: bytes
    files: dict[str, str]  # relative path -> "type mode content-or-target"
    seconds: float
    timed_out: bool = False


@dataclass
class Outcome:
    workload: Workload
    native: Run | None = None
    emulated: Run | None = None
    missing: str = ""  # why it could not run here
    differences: list[str] = field(default_factory=list)  # one short diff each

    @property
    def matches(self) -> bool:
        return not self.missing and not self.differences


def missing_tools(w: Workload) -> str:
    """Why `w` cannot run here ("" if it can): a program it needs is not installed."""
    gone = [t for t in w.needs if not shutil.which(t, path=PATH)]
    if not gone:
        return ""
    return f"not installed: {', '.join(gone)} (`make corpus-deps` installs them as root)"


def argv_of(w: Workload) -> list[str]:
    """The command with its program as an absolute path (the emulator does not search
    PATH)."""
    argv = ["/bin/sh", "-c", w.sh] if w.sh is not None else list(w.argv)
    if "/" not in argv[0]:
        found = shutil.which(argv[0], path=PATH)
        if found is None:
            raise FileNotFoundError(argv[0])
        argv[0] = found
    return argv


def _snapshot(root: Path, volatile: tuple[str, ...]) -> dict[str, str]:
    """Every entry under `root`: type, permission bits and content (symlink: target). The
    contents of paths matching a `volatile` glob are left out (their names still count)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        if stat.S_ISLNK(st.st_mode):
            out[rel] = f"symlink -> {os.readlink(path)}"
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = f"dir {mode}"
        elif stat.S_ISREG(st.st_mode):
            if any(Path(rel).match(g) for g in volatile):
                out[rel] = f"file {mode} (content not compared)"
            else:
                data = path.read_bytes()
                try:
                    shown = data.decode()
                except UnicodeDecodeError:
                    shown = data.hex()
                out[rel] = f"file {mode} {shown}"
        else:
            out[rel] = f"other {stat.S_IFMT(st.st_mode):o}"
    return out


def _fresh(base: Path, w: Workload) -> tuple[Path, dict[str, str]]:
    """The work directory with the inputs, and the environment, each time anew."""
    for name in ("work", "home", "tmp"):
        shutil.rmtree(base / name, ignore_errors=True)
        (base / name).mkdir()
    work = base / "work"
    for name, content in w.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if name in w.executable:
            path.chmod(0o755)
        os.utime(path, (INPUT_MTIME, INPUT_MTIME))
    env = base_env(base / "home", base / "tmp")
    env.update(w.env)
    return work, env


def emu_prefix(w: Workload) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uintr_emu",
        "run",
        "--cpus",
        str(w.cpus),
        "--timeout",
        str(w.timeout),
        "-U",
        "PYTHONPATH",
    ]


#: Every signal at its default action for both runs: a runner started in the background by a
#: shell would otherwise pass SIGINT and SIGQUIT on ignored (and `kill -INT $$` do nothing).
DEFAULT_SIGNALS = ["/usr/bin/env", "--default-signal"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Run:
    start = time.monotonic()
    try:
        p = subprocess.run(
            [*DEFAULT_SIGNALS, *cmd],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        status, out, err, hung = p.returncode, p.stdout, p.stderr, False
    except subprocess.TimeoutExpired as exc:
        status, out, err, hung = -9, exc.stdout or b"", exc.stderr or b"", True
    return Run(status, out, err, {}, time.monotonic() - start, hung)


def run_native(w: Workload, base: Path) -> Run:
    work, env = _fresh(base, w)
    r = _run(argv_of(w), work, env, NATIVE_TIMEOUT)
    r.files = _snapshot(work, w.volatile)
    return r


def run_emulated(w: Workload, base: Path) -> Run:
    work, env = _fresh(base, w)
    # The emulator's own Python needs the package; -U PYTHONPATH keeps it from the guest.
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    r = _run([*emu_prefix(w), *argv_of(w)], work, env, w.timeout + GRACE)
    r.files = _snapshot(work, w.volatile)
    return r


def _diff(what: str, native: str, emulated: str, limit: int = 12) -> str:
    lines = list(
        difflib.unified_diff(
            native.splitlines(), emulated.splitlines(), "native", "uintr-emu", lineterm="", n=1
        )
    )
    shown = lines[2 : 2 + limit]
    more = f"\n  ... {len(lines) - 2 - limit} more lines" if len(lines) - 2 > limit else ""
    return f"{what}:\n" + "\n".join("  " + s for s in shown) + more


def compare(native: Run, emulated: Run) -> list[str]:
    """The differences between the two runs, each a short titled diff."""
    out: list[str] = []
    if emulated.timed_out:
        out.append(f"the emulated run did not end within {emulated.seconds:.0f} s")
    if native.status != emulated.status:
        out.append(f"exit status: native {native.status}, uintr-emu {emulated.status}")
    for what in ("stdout", "stderr"):
        n, e = getattr(native, what), getattr(emulated, what)
        if n != e:
            out.append(_diff(what, n.decode(errors="replace"), e.decode(errors="replace")))
    if native.files != emulated.files:
        n = "\n".join(f"{k}: {v[:200]}" for k, v in native.files.items())
        e = "\n".join(f"{k}: {v[:200]}" for k, v in emulated.files.items())
        out.append(_diff("files left behind", n, e))
    return out


def run_workload(w: Workload) -> Outcome:
    """Both runs of `w` in a temporary directory of their own, compared."""
    missing = missing_tools(w)
    if missing:
        return Outcome(w, missing=missing)
    base = Path(tempfile.mkdtemp(prefix=f"corpus-{w.name}-"))
    try:
        native = run_native(w, base)
        # A second native run: a workload whose output varies natively is a bad workload.
        unstable = compare(native, run_native(w, base))
        emulated = run_emulated(w, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if unstable:
        return Outcome(w, native, emulated, differences=["two native runs differ:", *unstable])
    return Outcome(w, native, emulated, differences=compare(native, emulated))
