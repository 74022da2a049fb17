"""The "real programs" section of benchmarks/run.py (issue 14): host programs, three runners.

Each workload runs natively, under qemu-x86_64 and under uintr-emu (`python -m uintr_emu run`,
the host's own dynamic binaries), in one invocation; the figures are uintr-emu / native,
uintr-emu / qemu and the geometric mean of uintr-emu / qemu, against the issue's targets. This
module holds what does not need the suite: the workloads and their commands, the deterministic
inputs, the verdict on one run and the summary. run.py's `section_real` runs them.

qemu-user cannot follow an exec (without binfmt_misc, which a container may not register), so
gcc's children would run natively under it. For a fair comparison qemu runs gcc with `-B DIR`,
DIR holding one-line scripts `cc1`, `as`, `collect2` and `ld` that exec the real tool under
qemu-x86_64 (the scripts' /bin/sh runs natively: four shell start-ups, ~1 ms each). uintr-emu
follows exec itself and runs the plain command.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEED = 14  # the number: any fixed value makes the inputs reproducible
TARGET_GEOMEAN = 3.0  # geometric mean of uintr-emu / qemu over the workloads
TARGET_EACH = 5.0  # no workload above this many times qemu
TARGET_LOOP = 4.0  # the volatile loop's own, stricter, bound
MB = 1 << 20
# What apt installs to provide each tool a workload runs (run.py installs it when missing).
TOOLS = {
    "sha256sum": "coreutils",
    "sort": "coreutils",
    "xz": "xz-utils",
    "python3": "python3",
    "gcc": "gcc",
}
# Only Debian's own binaries: a shim earlier on PATH (pyenv's python3 is a bash script) would
# put a shell into every measurement.
SYSTEM_PATH = "/usr/bin:/bin"
PY_LOOP = "s = 0\nfor i in range({n}):\n    s += i % 7\nprint(s)\n"
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


@dataclass(frozen=True)
class Sizes:
    loop: int  # volatile loop iterations
    sha256: int  # bytes hashed
    xz: int  # bytes of text compressed
    python: int  # Python loop iterations
    sort: int  # bytes of lines sorted


FULL = Sizes(loop=10**8, sha256=50 * MB, xz=4 * MB, python=3_000_000, sort=6 * MB)
# --quick: the whole section in well under a minute, every runner once.
QUICK = Sizes(loop=10**6, sha256=1 * MB, xz=MB // 4, python=30_000, sort=MB // 4)


@dataclass
class Workload:
    key: str  # short name: JSON keys and ratio names
    label: str  # the table's name, with the size
    argv: list[str]  # the native command; the emulators prefix their own
    qemu_argv: list[str] | None = None  # when qemu needs more than a prefix (gcc)
    out_file: Path | None = None  # a file the program writes, compared like its stdout
    missing: str = ""  # why it cannot run here (a tool not installed)

    def limit(self) -> float:
        return TARGET_LOOP if self.key == "loop" else TARGET_EACH

    def commands(self, qemu: str | None, emu: Sequence[str]) -> list[tuple[str, list[str]]]:
        """(runner, command) in the order they run; qemu only when it is installed."""
        runs = [("native", list(self.argv))]
        if qemu:
            runs.append(("qemu", self.qemu_argv or [qemu, *self.argv]))
        runs.append(("uintr-emu", [*emu, *self.argv]))
        return runs


def size_label(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n // 1024} KB"


def count_label(n: int) -> str:
    """10**8 as "1e8", 3_000_000 as "3M": how the issue names the sizes."""
    if n % 1_000_000 == 0 and n < 10**8:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0 and n < 10**6:
        return f"{n // 1000}k"
    mantissa, exp = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exp)}" if int(mantissa) * 10 ** int(exp) == n else f"{n:,}"


# --- inputs ---------------------------------------------------------------------------------


def _write_once(path: Path, make: Callable[[], bytes]) -> Path:
    """Create `path` from make() unless it exists; via a temporary name, so an interrupted run
    never leaves a short input behind that a later run would take for complete."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(make())
        tmp.replace(path)
    return path


def random_bytes(size: int, seed: int = SEED) -> bytes:
    # SHAKE-256 is specified bit for bit, so the file (and its digest) is the same everywhere.
    return hashlib.shake_256(f"uintr-emu bench {seed}".encode()).digest(size)


def text(size: int, seed: int = SEED) -> bytes:
    """About `size` bytes (whole lines, at most `size`) of word-like text: a vocabulary of
    pseudo-words drawn with Zipf-like frequencies, so it compresses the way prose does rather
    than as random bytes or as one repeated line."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
    vocab = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(5000)})
    rng.shuffle(vocab)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    out: list[str] = []
    total = 0
    while total < size:
        words = rng.choices(vocab, weights=weights, k=4096)
        i = 0
        while i < len(words) and total < size:
            n = rng.randint(3, 14)
            line = " ".join(words[i : i + n]) + "\n"
            i += n
            if total + len(line) > size:
                return "".join(out).encode()
            out.append(line)
            total += len(line)
    return "".join(out).encode()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- workloads ------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=SYSTEM_PATH)


def qemu_gcc_wrappers(qemu: str, gcc: str, wdir: Path) -> Path:
    """The -B directory that makes qemu-run gcc run its children under qemu too (module
    docstring). The scripts name the real tools by absolute path, so they cannot find
    themselves again."""
    d = wdir / "qemu-gcc"
    d.mkdir(parents=True, exist_ok=True)
    for tool in ("cc1", "as", "collect2", "ld"):
        r = subprocess.run(
            [gcc, f"-print-prog-name={tool}"], capture_output=True, text=True, check=True
        )
        prog = r.stdout.strip()
        real = prog if "/" in prog else find_tool(prog)
        if not real:
            raise FileNotFoundError(f"gcc's {tool} ({prog}) not found")
        script = d / tool
        script.write_text(f'#!/bin/sh\nexec {qemu} {os.path.realpath(real)} "$@"\n')
        script.chmod(0o755)
    return d


def workloads(
    sizes: Sizes,
    wdir: Path,
    tools: dict[str, str | None],
    missing: dict[str, str],
    qemu: str | None,
    loop_prog: Path,
    hello_prog: Path,
) -> list[Workload]:
    """The issue's seven workloads, their inputs created in `wdir`. `tools` maps each of TOOLS
    to its path (None when not installed, `missing` then says why)."""

    def tool(name: str) -> str:
        return tools.get(name) or name

    def absent(*names: str) -> str:
        gone = [n for n in names if not tools.get(n)]
        return "; ".join(f"{n}: {missing.get(n, 'not installed')}" for n in gone)

    blob = _write_once(
        wdir / f"random-{SEED}-{sizes.sha256}.bin", lambda: random_bytes(sizes.sha256)
    )
    prose = _write_once(wdir / f"text-{SEED}-{sizes.xz}.txt", lambda: text(sizes.xz))
    lines = _write_once(
        wdir / f"lines-{SEED + 1}-{sizes.sort}.txt", lambda: text(sizes.sort, SEED + 1)
    )
    hello_c = _write_once(wdir / "hello.c", HELLO_C.encode)
    out = wdir / "gcc-hello.out"
    gcc_argv = [tool("gcc"), "-O2", "-o", str(out), str(hello_c)]
    qemu_gcc: list[str] | None = None
    gcc_missing = absent("gcc")
    if qemu and not gcc_missing:
        try:
            wrappers = qemu_gcc_wrappers(qemu, tool("gcc"), wdir)
            qemu_gcc = [qemu, tool("gcc"), "-B", f"{wrappers}/", *gcc_argv[1:]]
        except (OSError, subprocess.CalledProcessError) as e:
            gcc_missing = f"gcc's tools for qemu: {e}"
    return [
        Workload(
            "loop", f"volatile loop {count_label(sizes.loop)}", [str(loop_prog), str(sizes.loop)]
        ),
        Workload(
            "sha256sum",
            f"sha256sum {size_label(sizes.sha256)}",
            [tool("sha256sum"), str(blob)],
            missing=absent("sha256sum"),
        ),
        Workload(
            "xz",
            f"xz -6 -T1, {size_label(sizes.xz)} text",
            [tool("xz"), "-6", "-T1", "-c", str(prose)],
            missing=absent("xz"),
        ),
        Workload(
            "python",
            f"python3 loop {count_label(sizes.python)}",
            # -I: no user site, no PYTHON* variables: the same interpreter state in every run.
            [tool("python3"), "-I", "-c", PY_LOOP.format(n=sizes.python)],
            missing=absent("python3"),
        ),
        Workload(
            "sort",
            f"sort --parallel=2, {size_label(sizes.sort)}",
            [tool("sort"), "--parallel=2", str(lines)],
            missing=absent("sort"),
        ),
        Workload("gcc", "gcc -O2 hello.c", gcc_argv, qemu_gcc, out, gcc_missing),
        Workload("hello", "start-up: static hello world", [str(hello_prog)]),
    ]


# --- verdicts -------------------------------------------------------------------------------

EMU_WARNING = re.compile(r"^uintr-emu: warning: (.*)$", re.M)


def warnings_of(stderr: str) -> list[str]:
    """uintr-emu's distinct warnings (unsupported syscalls and the like), in order."""
    return list(dict.fromkeys(EMU_WARNING.findall(stderr)))


def failure_reason(stderr: str, returncode: int) -> str:
    """One line saying why a run failed: uintr-emu's own error line if it printed one, else the
    last line of stderr (a Python traceback ends with the exception), else the status."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    own = [ln for ln in lines if ln.startswith("uintr-emu:") and "warning:" not in ln]
    signal = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    if own:
        return f"{own[0]} ({signal})"
    rest = [ln for ln in lines if not EMU_WARNING.match(ln)]
    return f"{rest[-1]} ({signal})" if rest else signal


@dataclass
class Outcome:
    """One runner on one workload: its best run's times and whether its output was right."""

    status: str  # "ok", "fails: <reason>" or "differs: <what>"
    wall: float | None = None
    cpu: float | None = None
    warnings: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return self.status == "ok"


def judge(
    returncode: int,
    stderr: str,
    digests: tuple[str, str | None],
    native: tuple[str, str | None] | None,
) -> str:
    """ "ok", "fails: ..." or "differs: ...". `digests` is (stdout sha256, written file's sha256
    or None); `native` the native run's, None when judging the native run itself."""
    if returncode != 0:
        return f"fails: {failure_reason(stderr, returncode)}"
    if native is None:
        return "ok"
    if digests[0] != native[0]:
        return f"differs: stdout sha256 {digests[0][:12]} != native {native[0][:12]}"
    if digests[1] != native[1]:
        got = (digests[1] or "no file")[:12]
        return f"differs: output file sha256 {got} != native {(native[1] or 'no file')[:12]}"
    return "ok"


def per(a: float | None, b: float | None) -> float:
    """a / b for two times of ok runs; a floor on b because a native hello world can take less
    CPU time than the kernel's accounting resolves."""
    assert a is not None and b is not None, "a ratio of a run that did not succeed"
    return a / max(b, 1e-4)


def geomean(values: Sequence[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


@dataclass
class Summary:
    geomean: float | None  # uintr-emu / qemu over the workloads that both ran correctly
    geomean_cpu: float | None  # the same by CPU time
    counted: list[str]  # the workloads in the mean
    excluded: dict[str, str]  # workload -> why not (failed, differs, qemu failed, not run)
    above: list[str]  # workloads over their bound (TARGET_LOOP or TARGET_EACH), by wall
    above_cpu: list[str]  # the same by CPU time


def summarize(work: Sequence[Workload], results: dict[str, dict[str, Outcome]]) -> Summary:
    """Ratios over the workloads where native, qemu and uintr-emu all ran and agreed; the
    others are named in `excluded`, never silently dropped."""
    wall: list[float] = []
    cpu: list[float] = []
    counted: list[str] = []
    excluded: dict[str, str] = {}
    above: list[str] = []
    above_cpu: list[str] = []
    for w in work:
        res = results.get(w.key, {})
        if w.missing or not res:
            excluded[w.key] = f"not run: {w.missing or 'no result'}"
            continue
        bad = [(r, o.status) for r, o in res.items() if not o.ok()]
        if "qemu" not in res:
            bad.append(("qemu", "not installed"))
        if bad:
            excluded[w.key] = "; ".join(f"{r} {s}" for r, s in bad)
            continue
        e, q = res["uintr-emu"], res["qemu"]
        counted.append(w.key)
        wall.append(per(e.wall, q.wall))
        cpu.append(per(e.cpu, q.cpu))
        if wall[-1] > w.limit():
            above.append(w.key)
        if cpu[-1] > w.limit():
            above_cpu.append(w.key)
    return Summary(geomean(wall), geomean(cpu), counted, excluded, above, above_cpu)
