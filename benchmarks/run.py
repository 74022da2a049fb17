"""The uintr-emu benchmark suite: one command, every figure, ratios from one invocation.

    python benchmarks/run.py [--quick] [--only compute,uipi,startup,scaling,qiling,memory,real]
                             [--out DIR] [--real-repeat N]

Sections (all by default; docs/performance.md explains each and records a full run):

- compute  benchmarks/programs/compute_bench.c natively, under qemu-x86_64, under the bare
           Unicorn runner (benchmarks/bare_unicorn.py), under uintr-emu with 1 and 4 threads.
- uipi     cross-thread ping-pong round trips per host second, delivery latency (--stats),
           self-IPI rate, 4 senders to 1 receiver.
- startup  static and dynamic hello world under uintr-emu (wall, peak RSS), python -c pass.
- scaling  host ns per guest instruction with 1, 2, 4, 8 busy threads on --cpus 4.
- qiling   Qiling 1.4.6 (its own venv, build/qiling-venv) on the compute program.
- memory   why memory-heavy guest code is slower: register/load/store/read-modify-write loops
           on plain Unicorn under mapping and engine configurations, and through uintr-emu.
- real     host programs (a volatile loop, sha256sum, xz, python3, sort, gcc, a static hello
           world) natively, under qemu-x86_64 and under uintr-emu: each uintr-emu / qemu and
           their geometric mean against the targets of issue 14 (benchmarks/real.py).

Progress goes to stderr (a line as each measurement starts and ends), the table to stdout, and
everything measured (machine, every raw run, every ratio) to DIR/results.json plus bar charts in
DIR/results.png (default DIR: benchmarks/results). --quick runs every section at small scale.
Set-up: installs qemu-user (apt, as root), matplotlib (into this venv), Qiling (into
build/qiling-venv) and the real section's tools (apt) when missing, and says so in the table
when it cannot.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402 - after the sys.path insert
from compute import (  # noqa: E402 - after the sys.path insert
    BUILD,
    EMU,
    HELLO,
    PROGRAMS,
    PY,
    ROOT,
    UINTR_CFLAGS,
    Measurement,
    best_of,
    build,
    compute_program,
    compute_runs,
)

SECTIONS = ("compute", "uipi", "startup", "scaling", "qiling", "memory", "real")
QILING_VENV = ROOT / "build" / "qiling-venv"
QILING_VERSION = "1.4.6"
TARGETS = {
    "emu_vs_bare": 1.10,  # uintr-emu single thread / bare Unicorn
    "emu4_vs_4bare": 1.6,  # uintr-emu 4 busy threads / (4 x bare single)
    "pingpong_rate": 50_000,  # round trips per host second
    "hello_wall": 0.10,  # seconds, static hello world
    "hello_dynamic_wall": 0.15,  # seconds, dynamic hello world
    "hello_rss_mb": 80,  # MiB peak RSS, static and dynamic hello world
}
MEM_LOOP_INSNS = 6  # guest instructions per iteration of benchmarks/programs/mem_loop.c


# --- bookkeeping ----------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    metric: str
    value: float | None
    unit: str
    target: str = ""
    result: str = ""  # PASS, FAIL or empty (no target)
    note: str = ""


class Suite:
    def __init__(self, quick: bool, real_repeat: int | None = None) -> None:
        self.quick = quick
        self.real_repeat = real_repeat  # --real-repeat; None: the section's default
        self.rows: list[Row] = []
        self.runs: dict[str, dict[str, list[dict]]] = {}
        self.ratios: dict[str, float] = {}
        self.values: dict[str, float] = {}
        self.cache: dict[str, Measurement] = {}
        self.t0 = time.perf_counter()

    def log(self, msg: str) -> None:
        sys.stderr.write(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}\n")
        sys.stderr.flush()

    def measure(
        self,
        section: str,
        name: str,
        cmd: list[str],
        repeat: int = 1,
        check: bool = True,
        timeout: float = 1800,
        by: str = "wall",
        env: dict | None = None,
    ) -> Measurement:
        """Best of `repeat` runs (least `by`: wall or cpu); every run is logged and kept for
        results.json. A failed run ends the repetitions (and raises BenchError if `check`)."""
        kept = self.runs.setdefault(section, {}).setdefault(name, [])
        count = [0]

        def on_run(m: Measurement) -> None:
            count[0] += 1
            status = (
                f"{m.wall:.3f} s wall, {m.cpu:.3f} s cpu" if m.ok() else f"FAILED ({m.returncode})"
            )
            self.log(f"{section}: {name} [{count[0]}/{repeat}] done: {status}")
            kept.append(
                {
                    "wall": m.wall,
                    "cpu": m.cpu,
                    "maxrss_kb": m.maxrss_kb,
                    "returncode": m.returncode,
                    "cmd": m.cmd,
                    "stdout_sha256": m.stdout_sha256,
                }
            )

        self.log(f"{section}: {name} start ({short(cmd)})")
        best, runs = best_of(cmd, repeat, check=False, timeout=timeout, on_run=on_run, env=env)
        if best.ok():
            best = min(runs, key=lambda m: getattr(m, by))
        if check and not best.ok():
            tail = "\n".join(best.stderr.strip().splitlines()[-5:])
            raise BenchError(f"{name} failed with status {best.returncode}: {tail}")
        return best

    def row(
        self,
        section: str,
        metric: str,
        value: float | None,
        unit: str,
        target: str = "",
        passed: bool | None = None,
        note: str = "",
    ) -> None:
        result = "" if passed is None else ("PASS" if passed else "FAIL")
        self.rows.append(Row(section, metric, value, unit, target, result, note))

    def min_cpu(self, section: str, name: str) -> float:
        """Least CPU time (user + system) among the kept runs of a measurement."""
        return min(r["cpu"] for r in self.runs[section][name] if r["returncode"] == 0)

    def ratio(self, key: str, value: float) -> float:
        self.ratios[key] = value
        return value


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class BenchError(Exception):
    pass


def short(cmd: list[str]) -> str:
    out = " ".join(Path(c).name if "/" in c else c for c in cmd)
    return out.replace(f"{Path(PY).name} -m uintr_emu run", "uintr-emu")


def sh(cmd: list[str], timeout: float = 60) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# --- set-up ---------------------------------------------------------------------------------


def ensure_command(
    suite: Suite,
    command: str,
    package: str,
    find: Callable[[str], str | None] = shutil.which,
) -> tuple[str | None, str]:
    """`command` (looked up by `find`) from Debian's `package`, installed if missing and we may
    (root, apt); the note says when the suite installed it or why it could not."""
    found = find(command)
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "not installed (no root or no apt-get)"
    suite.log(f"setup: {command} missing, apt-get install -y {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmds in (
        [["apt-get", "install", "-y", package]],
        [["apt-get", "update"], ["apt-get", "install", "-y", package]],
    ):
        for c in cmds:
            subprocess.run(c, capture_output=True, env=env, timeout=900, check=False)
        found = find(command)
        if found:
            return found, f"installed by the suite (apt-get install {package})"
    return None, f"not installed (apt-get install {package} failed)"


def ensure_qemu(suite: Suite) -> tuple[str | None, str]:
    """qemu-x86_64, installed from Debian's qemu-user if missing and we may (root, apt)."""
    return ensure_command(suite, "qemu-x86_64", "qemu-user")


def ensure_matplotlib(suite: Suite) -> str | None:
    try:
        return importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        pass
    suite.log("setup: matplotlib missing, pip install matplotlib")
    cmd = [PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "matplotlib"]
    subprocess.run(cmd, capture_output=True, timeout=900, check=False)
    importlib.invalidate_caches()
    try:
        return importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_qiling(suite: Suite) -> tuple[Path | None, str]:
    py = QILING_VENV / "bin" / "python"
    probe = [str(py), "-c", "import importlib.metadata as m; print(m.version('qiling'))"]
    if py.exists() and sh(probe) == QILING_VERSION:
        return py, ""
    suite.log(f"setup: creating {QILING_VENV.relative_to(ROOT)} with qiling=={QILING_VERSION}")
    base = shutil.which("python3") or sys.executable
    subprocess.run(
        [base, "-m", "venv", str(QILING_VENV)], capture_output=True, timeout=300, check=False
    )
    r = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"qiling=={QILING_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if sh(probe) == QILING_VERSION:
        return py, "installed by the suite"
    first = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
    return None, f"not installed: {first}"


def uintr_program(name: str) -> Path:
    """examples/bin/NAME if it is there, else built from examples/NAME.c."""
    p = ROOT / "examples" / "bin" / name
    if p.exists() and os.access(p, os.X_OK):
        return p
    return build(name, ROOT / "examples" / f"{name}.c", cflags=UINTR_CFLAGS)


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(pkg: str) -> str | None:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "unicorn": version("unicorn"),
        "uintr_emu": version("uintr-emu"),
        "matplotlib": version("matplotlib"),
        "gcc": sh(["gcc", "-dumpfullversion"]),
        "qemu": (sh(["qemu-x86_64", "--version"]).splitlines() or [""])[0],
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "loadavg_start": os.getloadavg(),
    }


# --- compute --------------------------------------------------------------------------------


def section_compute(suite: Suite, qemu: str | None, qemu_note: str) -> None:
    scale, repeat = (1, 1) if suite.quick else (10, 3)
    prog = compute_program()
    res: dict[str, Measurement] = {}
    for name, cmd in compute_runs(prog, scale, qemu):
        res[name] = suite.measure("compute", name, cmd, repeat)
    outs = {n: m.stdout for n, m in res.items()}
    single = {n: o for n, o in outs.items() if "4 threads" not in n}
    four = {n: o for n, o in outs.items() if "4 threads" in n}
    if len(set(single.values())) != 1 or len(set(four.values())) != 1:
        raise BenchError(f"runners disagree on the output: {outs}")
    suite.cache["compute uintr-emu"] = res["uintr-emu"]
    suite.cache["compute native"] = res["native"]
    suite.values["compute_scale"] = scale
    nat, bare = res["native"].wall, res["bare unicorn"].wall
    emu, emu4 = res["uintr-emu"].wall, res["uintr-emu, 4 threads"].wall
    nat4 = res["native, 4 threads"].wall
    note = f"scale {scale}, best of {repeat}"

    def cpu(name: str) -> float:
        return suite.min_cpu("compute", name)

    suite.row("compute", "native", nat, "s", note=note)
    if "qemu-x86_64" in res:
        q = res["qemu-x86_64"].wall
        suite.row(
            "compute",
            "qemu-x86_64",
            q,
            "s",
            note=f"{suite.ratio('qemu_vs_native', q / nat):.1f}x native {qemu_note}",
        )
    else:
        suite.row("compute", "qemu-x86_64", None, "s", note=qemu_note)
    suite.row(
        "compute",
        "bare unicorn (engine ceiling)",
        bare,
        "s",
        note=f"{suite.ratio('bare_vs_native', bare / nat):.1f}x native; "
        f"CPU {cpu('bare unicorn'):.2f} s",
    )
    suite.row(
        "compute",
        "uintr-emu, 1 thread",
        emu,
        "s",
        note=f"{suite.ratio('emu_vs_native', emu / nat):.1f}x native; CPU {cpu('uintr-emu'):.2f} s",
    )
    r1 = suite.ratio("emu_vs_bare", emu / bare)
    c1 = suite.ratio("emu_vs_bare_cpu", cpu("uintr-emu") / cpu("bare unicorn"))
    t1 = TARGETS["emu_vs_bare"]
    suite.row(
        "compute",
        "uintr-emu / bare, 1 thread",
        r1,
        "x",
        f"<= {t1}",
        r1 <= t1,
        f"by CPU time {c1:.3f}: {verdict(c1 <= t1)}",
    )
    suite.row("compute", "native, 4 threads", nat4, "s")
    suite.row(
        "compute",
        "uintr-emu, 4 threads",
        emu4,
        "s",
        note=f"{suite.ratio('emu4_vs_native4', emu4 / nat4):.1f}x native 4 threads; "
        f"CPU {cpu('uintr-emu, 4 threads'):.2f} s",
    )
    r4 = suite.ratio("emu4_vs_4bare", emu4 / (4 * bare))
    c4 = suite.ratio("emu4_vs_4bare_cpu", cpu("uintr-emu, 4 threads") / (4 * cpu("bare unicorn")))
    t4 = TARGETS["emu4_vs_4bare"]
    suite.row(
        "compute",
        "uintr-emu 4 threads / (4 x bare)",
        r4,
        "x",
        f"<= {t4}",
        r4 <= t4,
        f"per unit of work; by CPU time {c4:.3f}: {verdict(c4 <= t4)}",
    )


# --- uipi -----------------------------------------------------------------------------------

LATENCY_RE = re.compile(r"delivery latency .*?n=(\d+) min (\d+) median (\d+) max (\d+)")


def rate_run(
    suite: Suite,
    name: str,
    base: list[str],
    unit_per_arg: int,
    first: int,
    host_seconds: float,
    check_out: str | None = None,
) -> tuple[float, int, float, float]:
    """Events per host second of `base + [N]`: wall(N) minus the wall of `base + [1]`.

    N comes from a first run of `first` so that the measured run's net host time is about
    `host_seconds`. Returns (rate, N, net seconds, the rate by CPU time instead of wall)."""
    repeat_startup = 1 if suite.quick else 3
    label = f"{name} start-up (N=1)"
    startup = suite.measure("uipi", label, [*base, "1"], repeat_startup).wall
    startup_cpu = suite.min_cpu("uipi", label)
    n = first
    while True:  # grow the probe until its net time is well above the start-up noise
        probe = suite.measure("uipi", f"{name} calibration (N={n})", [*base, str(n)])
        net = probe.wall - startup
        if net >= host_seconds / 10 or n >= first * 256:
            break
        n *= 4
    n = max(n, min(math.ceil(host_seconds * n / max(net, 1e-3)), n * 50))
    m = suite.measure("uipi", f"{name} (N={n})", [*base, str(n)], 1 if suite.quick else 2)
    if check_out and check_out.format(n=n, total=n * unit_per_arg) not in m.stdout:
        raise BenchError(f"{name}: unexpected output {m.stdout!r}")
    net = m.wall - startup
    net_cpu = suite.min_cpu("uipi", f"{name} (N={n})") - startup_cpu
    return n * unit_per_arg / net, n, net, n * unit_per_arg / net_cpu


def section_uipi(suite: Suite) -> None:
    secs = 0.5 if suite.quick else 3.0  # full runs: >= 2 s of host time per rate
    emu2 = [*EMU, "--cpus", "2"]
    pingpong = str(uintr_program("pingpong"))
    rate, n, net, rcpu = rate_run(
        suite,
        "pingpong",
        [*emu2, pingpong],
        1,
        300 if suite.quick else 3000,
        secs,
        "main thread received {n} pongs",
    )
    t = TARGETS["pingpong_rate"]
    suite.ratio("pingpong_rate", rate)
    suite.row(
        "uipi",
        "pingpong round trips / host s",
        rate,
        "/s",
        f">= {t:,}",
        rate >= t,
        f"N={n}, {net:.2f} s net, --cpus 2; by CPU time {rcpu:,.0f}/s: {verdict(rcpu >= t)}",
    )
    suite.ratio("pingpong_rate_cpu", rcpu)
    m = suite.measure("uipi", f"pingpong --stats (N={n})", [*emu2, "--stats", pingpong, str(n)])
    lat = LATENCY_RE.search(m.stderr)
    if lat:
        cnt, lo, med, hi = (int(x) for x in lat.groups())
        suite.values.update(latency_min=lo, latency_median=med, latency_max=hi)
        suite.row(
            "uipi",
            "delivery latency min / median / max",
            med,
            "guest insns",
            note=f"min {lo}, median {med}, max {hi} (n={cnt}, --stats)",
        )
    else:
        suite.row("uipi", "delivery latency", None, "", note="no latency line in --stats")
    self_ipi = str(build("self_ipi_bench", PROGRAMS / "self_ipi_bench.c", cflags=UINTR_CFLAGS))
    rate, n, net, rcpu = rate_run(
        suite,
        "self-IPI",
        [*EMU, self_ipi],
        1,
        500 if suite.quick else 5000,
        secs,
        "self_ipi: {n} sent, {n} received",
    )
    suite.ratio("self_ipi_rate", rate)
    suite.ratio("self_ipi_rate_cpu", rcpu)
    suite.row(
        "uipi",
        "self-IPIs / host s",
        rate,
        "/s",
        note=f"N={n}, {net:.2f} s net; by CPU time {rcpu:,.0f}/s",
    )
    many = str(build("many_senders_bench", PROGRAMS / "many_senders_bench.c", cflags=UINTR_CFLAGS))
    rate, n, net, rcpu = rate_run(
        suite,
        "4 senders -> 1 receiver",
        [*EMU, "--cpus", "4", many],
        4,
        25 if suite.quick else 250,
        secs,
        "total: {total} interrupts",
    )
    suite.ratio("many_senders_rate", rate)
    suite.row(
        "uipi",
        "4 senders -> 1 receiver, deliveries / host s",
        rate,
        "/s",
        note=f"4 x {n} sends, {net:.2f} s net, --cpus 4; by CPU time {rcpu:,.0f}/s",
    )
    suite.ratio("many_senders_rate_cpu", rcpu)


# --- startup --------------------------------------------------------------------------------


def peak_rss_kb(suite: Suite, name: str, cmd: list[str]) -> tuple[int, str]:
    """Peak RSS of one run: GNU time's %M if /usr/bin/time exists, else wait4's ru_maxrss of a
    child forked from a fresh, small process (so the harness's own pages do not count)."""
    if os.access("/usr/bin/time", os.X_OK):
        m = suite.measure("startup", f"{name} peak RSS", ["/usr/bin/time", "-f", "%M", *cmd])
        return int(m.stderr.strip().splitlines()[-1]), "/usr/bin/time -f %M"
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    m = suite.measure("startup", f"{name} peak RSS", [PY, "-c", code, *cmd])
    return int(m.stdout.strip().splitlines()[-1]), "getrusage(RUSAGE_CHILDREN) in a fresh child"


def section_startup(suite: Suite) -> None:
    repeat = 3 if suite.quick else 10
    hello_s = str(build("hello", HELLO))
    hello_d = str(build("hello", HELLO, static=False))
    # What an installed package has: pip byte-compiles it, an editable install is not, and
    # under PYTHONDONTWRITEBYTECODE each run would compile every module (~0.4 s).
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "src" / "uintr_emu")], check=True)
    tr = TARGETS["hello_rss_mb"]
    for label, cmd, tw in (
        ("static hello world", [*EMU, hello_s], TARGETS["hello_wall"]),
        ("dynamic hello world", [*EMU, hello_d], TARGETS["hello_dynamic_wall"]),
        ("python -c pass (floor)", [PY, "-c", "pass"], None),
    ):
        targeted = tw is not None
        m = suite.measure("startup", label, cmd, repeat)
        if "hello" in label and m.stdout.strip() != "hello":
            raise BenchError(f"{label}: unexpected output {m.stdout!r}")
        rss, how = peak_rss_kb(suite, label, cmd)
        mb = rss / 1024
        key = label.split()[0]
        c = suite.min_cpu("startup", label)
        suite.values[f"{key}_wall"] = m.wall
        suite.values[f"{key}_cpu"] = c
        suite.values[f"{key}_rss_mb"] = mb
        suite.row(
            "startup",
            f"{label}, wall",
            m.wall,
            "s",
            f"<= {tw}" if targeted else "",
            (m.wall <= tw) if targeted else None,
            f"best of {repeat}; CPU {c:.3f} s" + (f": {verdict(c <= tw)}" if targeted else ""),
        )
        suite.row(
            "startup",
            f"{label}, peak RSS",
            mb,
            "MiB",
            f"<= {tr}" if targeted else "",
            (mb <= tr) if targeted else None,
            how,
        )


# --- scaling --------------------------------------------------------------------------------

THREAD_INSNS_RE = re.compile(r"^\s*thread \d+: instructions (\d+)", re.M)


def stats_insns(m: Measurement) -> int:
    return sum(int(x) for x in THREAD_INSNS_RE.findall(m.stderr))


def section_scaling(suite: Suite) -> None:
    """mem_loop reg: each thread runs ITER x 10^6 iterations of a 6-instruction register loop.
    ns per guest instruction = (wall - wall of the same run with 0 iterations) / instructions,
    the instructions from --stats (difference of the two runs)."""
    # Million iterations per thread: a lone uncounted thread runs ~50x faster than counted.
    iters_alone, iters = (50, 1) if suite.quick else (300, 20)
    prog = str(build("mem_loop", PROGRAMS / "mem_loop.c"))
    base = [*EMU, "--cpus", "4", "--stats"]
    first: float | None = None
    for threads, extra, label in (
        (1, [], "1 thread, alone (uncounted)"),
        (1, ["--max-insns", str(10**15)], "1 thread, counted (--max-insns)"),
        (2, [], "2 threads"),
        (4, [], "4 threads"),
        (8, [], "8 threads"),
    ):
        targs = [str(threads)]  # 1: the main thread runs the loop itself
        zero = suite.measure(
            "scaling", f"{label}, 0 iterations", [*base, *extra, prog, "reg", "0", *targs]
        )
        it = iters_alone if threads == 1 and not extra else iters
        m = suite.measure("scaling", label, [*base, *extra, prog, "reg", str(it), *targs])
        known = MEM_LOOP_INSNS * it * 10**6 * threads
        counted = stats_insns(m) - stats_insns(zero)
        if not extra and threads == 1:
            insns, how = known, "known loop count (a lone thread is not counted)"
        else:
            insns, how = counted, f"--stats ({counted / known:.3f} of the loop count)"
        ns = (m.wall - zero.wall) / insns * 1e9
        ns_cpu = (m.cpu - zero.cpu) / insns * 1e9
        suite.values[f"scaling_ns_{threads}{'c' if extra else ''}"] = ns
        suite.values[f"scaling_cpu_ns_{threads}{'c' if extra else ''}"] = ns_cpu
        if threads == 1 and extra:
            first = ns
        rel = f", {ns / first:.2f}x counted 1 thread" if first and threads > 1 else ""
        suite.row(
            "scaling",
            f"{label}: host ns / guest insn",
            ns,
            "ns",
            note=f"{insns / 1e6:.0f} M insns, {how}{rel}; by CPU time {ns_cpu:.2f} ns",
        )


# --- qiling ---------------------------------------------------------------------------------


def section_qiling(suite: Suite) -> None:
    py, note = ensure_qiling(suite)
    scale = int(suite.values.get("compute_scale", 1 if suite.quick else 10))
    repeat = 1 if suite.quick else 2
    prog = compute_program()
    if py is None:
        suite.row("qiling", "Qiling on compute_bench", None, "s", "emu faster", None, note)
        return
    native = suite.cache.get("compute native") or suite.measure(
        "qiling", "native", [str(prog), str(scale)]
    )
    emu = suite.cache.get("compute uintr-emu") or suite.measure(
        "qiling", "uintr-emu, 1 thread", [*EMU, str(prog), str(scale)], repeat
    )
    runner = str(ROOT / "benchmarks" / "qiling_runner.py")
    m = suite.measure(
        "qiling", "Qiling 1.4.6", [str(py), runner, str(prog), str(scale)], repeat, check=False
    )
    err = [ln for ln in m.stderr.splitlines() if ln.startswith("qiling: error")]
    if not m.ok() or err:
        first = err[0] if err else (m.stderr.strip().splitlines() or ["?"])[-1]
        suite.row(
            "qiling",
            "Qiling on compute_bench",
            None,
            "s",
            "emu faster",
            None,
            f"Qiling cannot run it: {first}",
        )
        return
    same = m.stdout == native.stdout
    r = suite.ratio("emu_vs_qiling", emu.wall / m.wall)
    q_cpu = suite.min_cpu("qiling", "Qiling 1.4.6")
    r_cpu = suite.ratio("emu_vs_qiling_cpu", emu.cpu / q_cpu)
    suite.row(
        "qiling",
        "Qiling 1.4.6, compute_bench",
        m.wall,
        "s",
        note=f"scale {scale}; output {'matches' if same else 'DIFFERS from'} native; "
        f"{m.wall / native.wall:.0f}x native; CPU {q_cpu:.2f} s {note}",
    )
    suite.row(
        "qiling",
        "uintr-emu / Qiling",
        r,
        "x",
        "< 1 (emu faster)",
        r < 1 and same,
        f"uintr-emu {emu.wall:.2f} s; by CPU time {r_cpu:.3f}: {verdict(r_cpu < 1 and same)}",
    )
    # The UINTR programs, for the record: Qiling has no UINTR syscalls.
    self_ipi = str(build("self_ipi_bench", PROGRAMS / "self_ipi_bench.c", cflags=UINTR_CFLAGS))
    m = suite.measure(
        "qiling", "Qiling 1.4.6, self_ipi_bench", [str(py), runner, self_ipi, "10"], check=False
    )
    err = [ln for ln in m.stderr.splitlines() if ln.startswith("qiling: error")]
    suite.row(
        "qiling",
        "Qiling 1.4.6, self_ipi_bench 10",
        None,
        "",
        note=err[0] if err else f"status {m.returncode}: {m.stdout.strip()[:60]}",
    )


# --- memory ---------------------------------------------------------------------------------

# Six-instruction loops (rdi = buffer, rdx = index, rcx = count), differing only in the first
# instruction; the same loops as benchmarks/programs/mem_loop.c:
#   <first>; add rbx, rax; inc rdx; and rdx, 0x1fff; dec rcx; jnz <first>; hlt
LOOP_CODE = {
    "reg": "4889d0",  # mov rax, rdx
    "load": "488b04d7",  # mov rax, [rdi+rdx*8]
    "store": "48891cd7",  # mov [rdi+rdx*8], rbx
    "rmw": "48011cd7",  # add [rdi+rdx*8], rbx
}
LOOP_TAIL = "4801c348ffc24881e2ff1f000048ffc975{:02x}f4"
MICRO_CONFIGS: dict[str, dict] = {
    "mem_map_ptr, data RW (as uintr-emu)": {},
    "mem_map instead of mem_map_ptr": {"ptr": False},
    "data mapped RWX (as bare_unicorn.py)": {"data_exec": True},
    "1000 more regions mapped": {"extra_regions": 1000},
    "data split into 4 KiB regions": {"split": True},
    "data at a 2 MiB-aligned address": {"data": 0x40000000},
    "memory-fault hooks (as uintr-emu)": {"hooks": ["fault"]},
    "mem read+write hooks on another range": {"hooks": ["memrw"]},
    "native code hook (uintr-emu's counter)": {"hooks": ["count"]},
    "UC_TLB_VIRTUAL": {"vtlb": True},
    "UC_TLB_VIRTUAL + fill hook (region perms)": {"vtlb": True, "hooks": ["fill"]},
    "UC_TLB_VIRTUAL + fill hook + fault hooks": {"vtlb": True, "hooks": ["fill", "fault"]},
    "guest paging, data pages NX": {"paging": True},
    "guest paging, data NX + fault hooks": {"paging": True, "hooks": ["fault"]},
}


def micro_main(config_json: str, scale: float) -> None:
    """`run.py _micro CONFIG SCALE`: the loops on plain Unicorn; prints M guest insns/s."""
    import ctypes
    import mmap
    import struct

    from unicorn import UC_ARCH_X86, UC_MODE_64, UC_TLB_VIRTUAL, Uc
    from unicorn import unicorn_const as ucc
    from unicorn import x86_const as x
    from unicorn.unicorn_py3.unicorn import uc_hook_h, uc_tlb_entry, uclib

    cfg = json.loads(config_json)
    code_at, data_at = 0x400000, cfg.get("data", 0x10001000)
    rw, rwx, rx = ucc.UC_PROT_READ | ucc.UC_PROT_WRITE, ucc.UC_PROT_ALL, 5
    keep: list = []

    def mapit(uc: Uc, addr: int, size: int, perms: int) -> None:
        if cfg.get("ptr", True):
            m = mmap.mmap(-1, size)
            keep.append(m)
            uc.mem_map_ptr(addr, size, perms, ctypes.addressof(ctypes.c_char.from_buffer(m)))
        else:
            uc.mem_map(addr, size, perms)

    def add_raw_hook(uc: Uc, htype: int, cb: object, user: object = None) -> None:
        h = uc_hook_h()
        keep.append(cb)
        uclib.uc_hook_add(
            uc._uch,
            ctypes.byref(h),
            htype,
            ctypes.cast(cb, ctypes.c_void_p),
            user,
            ctypes.c_uint64(1),
            ctypes.c_uint64(0),
        )

    out = {}
    for kind, first in LOOP_CODE.items():
        body = bytes.fromhex(first)
        code = body + bytes.fromhex(LOOP_TAIL.format(256 - (len(body) + 18)))
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        if cfg.get("vtlb"):
            uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        mapit(uc, code_at, 0x1000, rwx if not cfg.get("paging") else rx)
        uc.mem_write(code_at, code)
        dperm = rwx if cfg.get("data_exec") else rw
        if cfg.get("split"):
            for off in range(0, 0x10000, 0x1000):
                mapit(uc, data_at + off, 0x1000, dperm)
        else:
            mapit(uc, data_at, 0x10000, dperm)
        for i in range(cfg.get("extra_regions", 0)):
            mapit(uc, 0x20000000 + i * 0x2000, 0x1000, rw)
        for h in cfg.get("hooks", []):
            if h == "fault":
                uc.hook_add(ucc.UC_HOOK_MEM_UNMAPPED | ucc.UC_HOOK_MEM_PROT, lambda *a: False)
            elif h == "memrw":
                for t in (ucc.UC_HOOK_MEM_READ, ucc.UC_HOOK_MEM_WRITE):
                    uc.hook_add(t, lambda *a: None, None, 0x30000000, 0x30001000)
            elif h == "count":  # uintr-emu's native counting callback, as while slicing
                from uintr_emu.engine.unicorn import _Counter, _NativeCode

                native = _NativeCode.get()
                counter = _Counter(0, 1 << 62, native.emu_stop)
                keep.append(counter)
                add_raw_hook(
                    uc, ucc.UC_HOOK_CODE, ctypes.c_void_p(native.address), ctypes.byref(counter)
                )
            elif h == "fill":
                cbt = ctypes.CFUNCTYPE(
                    ctypes.c_bool,
                    ctypes.c_void_p,
                    ctypes.c_uint64,
                    ctypes.c_int,
                    ctypes.POINTER(uc_tlb_entry),
                    ctypes.c_void_p,
                )

                def fill(_uc, vaddr, _access, entry, _ud):  # noqa: ANN001
                    e = entry.contents
                    e.paddr = vaddr
                    e.perms = rx if code_at <= vaddr < code_at + 0x1000 else rw
                    return True

                add_raw_hook(uc, ucc.UC_HOOK_TLB_FILL, cbt(fill))
        if cfg.get("paging"):
            # 4-level tables identity-mapping the low 1 GiB with 2 MiB pages, NX except the
            # code's page; the tables live at 3 GiB (mapped by a second PD).
            pt = 0xC0000000
            mapit(uc, pt, 0x4000, rw)
            uc.mem_write(pt, struct.pack("<Q", (pt + 0x1000) | 7))
            uc.mem_write(
                pt + 0x1000, struct.pack("<4Q", (pt + 0x2000) | 7, 0, 0, (pt + 0x3000) | 7)
            )
            nx = 1 << 63
            pd = [(i << 21) | 0x87 | (0 if i == code_at >> 21 else nx) for i in range(512)]
            uc.mem_write(pt + 0x2000, struct.pack("<512Q", *pd))
            pd3 = [(0xC0000000 + (i << 21)) | 0x87 | nx for i in range(512)]
            uc.mem_write(pt + 0x3000, struct.pack("<512Q", *pd3))
            uc.reg_write(x.UC_X86_REG_CR3, pt)
            uc.reg_write(x.UC_X86_REG_CR4, uc.reg_read(x.UC_X86_REG_CR4) | 0x20)  # PAE
            efer = uc.reg_read(x.UC_X86_REG_MSR, 0xC0000080)
            uc.reg_write(x.UC_X86_REG_MSR, (0xC0000080, efer | 0x800))  # NXE
            uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | 0x80000000)  # PG
        n = int((1e8 if kind in ("reg", "load") else 1e7) * scale)
        best = float("inf")
        for rep in range(4):  # the first run translates
            uc.reg_write(x.UC_X86_REG_RDI, data_at)
            uc.reg_write(x.UC_X86_REG_RDX, 0)
            uc.reg_write(x.UC_X86_REG_RCX, n if rep else 1000)
            t = time.thread_time()
            uc.emu_start(code_at, code_at + len(code) - 1)
            if rep:
                best = min(best, time.thread_time() - t)
        out[kind] = MEM_LOOP_INSNS * n / best / 1e6
    print(json.dumps(out))


def variant_main(variant: str, argv: list[str]) -> None:
    """`run.py _variant VARIANT uintr-emu-args...`: uintr-emu with an engine experiment,
    patched in at run time (src/ is untouched). VARIANT "vtlb-nofault": UC_TLB_VIRTUAL with a
    TLB-fill hook that gives each page its mapping's permissions (so data pages are not
    executable and stores can take the fast path) and without the memory-fault hooks (whose
    presence keeps stores on the slow path). Guest faults are then NOT reported correctly: an
    experiment only, run on programs that do not fault."""
    import ctypes as C
    import runpy

    from unicorn import UC_TLB_VIRTUAL
    from unicorn import unicorn_const as ucc
    from unicorn.unicorn_py3.unicorn import uc_hook_h, uc_tlb_entry, uclib

    from uintr_emu.engine import unicorn as E

    if variant != "vtlb-nofault":
        raise SystemExit(f"unknown variant {variant}")
    fill_t = C.CFUNCTYPE(
        C.c_bool, C.c_void_p, C.c_uint64, C.c_int, C.POINTER(uc_tlb_entry), C.c_void_p
    )
    need_of = {ucc.UC_MEM_READ: 1, ucc.UC_MEM_WRITE: 2, ucc.UC_MEM_FETCH: 4}
    orig_hook_add = E.Engine._hook_add

    def hook_add(self, name, htype, cb, *extra):  # noqa: ANN001
        if name == "memfault":
            return
        orig_hook_add(self, name, htype, cb, *extra)
        if name != "syscall":
            return
        self.uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        perms: dict[int, int] = {}
        self._bench_perms = perms

        def fill(_uc, vaddr, access, entry, _ud):  # noqa: ANN001
            p = perms.get(vaddr >> 12, 7)  # pages mapped outside map_buffer: as before
            need = need_of.get(access, 0)
            if need == 4 and p:  # Unicorn's own code-cache probes on unmap/protect
                p |= 4
            e = entry.contents
            e.paddr, e.perms = vaddr, p
            return True

        cb = fill_t(fill)
        self._callbacks.append(cb)
        h = uc_hook_h()
        uclib.uc_hook_add(
            self.handle,
            C.byref(h),
            ucc.UC_HOOK_TLB_FILL,
            C.cast(cb, C.c_void_p),
            None,
            C.c_uint64(1),
            C.c_uint64(0),
        )

    def track(orig, drop=False):  # noqa: ANN001, ANN202
        def wrapper(self, address, size, *rest):  # noqa: ANN001
            orig(self, address, size, *rest)
            for page in range(address >> 12, (address + size) >> 12):
                if drop:
                    self._bench_perms.pop(page, None)
                else:
                    self._bench_perms[page] = rest[0]

        return wrapper

    E.Engine._hook_add = hook_add
    E.Engine.map_buffer = track(E.Engine.map_buffer)
    E.Engine.protect = track(E.Engine.protect)
    E.Engine.unmap = track(E.Engine.unmap, drop=True)
    sys.argv = ["uintr-emu", *argv]
    runpy.run_module("uintr_emu", run_name="__main__")


def section_memory(suite: Suite) -> None:
    scale = 0.25 if suite.quick else 1.0
    micro: dict[str, dict[str, float]] = {}
    for name, cfg in MICRO_CONFIGS.items():
        cmd = [PY, __file__, "_micro", json.dumps(cfg), str(scale)]
        r: dict[str, float] = {}
        for _ in range(1 if suite.quick else 2):  # two processes: the best rate of each loop
            m = suite.measure("memory", f"plain Unicorn: {name}", cmd, check=False)
            if not m.ok():
                break
            for kind, v in json.loads(m.stdout.strip().splitlines()[-1]).items():
                r[kind] = max(r.get(kind, 0.0), v)
        if not m.ok():
            err = (m.stderr.strip().splitlines() or ["?"])[-1]
            suite.row("memory", f"unicorn: {name}", None, "M insn/s", note=f"failed: {err}")
            continue
        micro[name] = r
        suite.row(
            "memory",
            f"unicorn: {name}",
            r["store"],
            "M insn/s",
            note=f"store; reg {r['reg']:.0f}, load {r['load']:.0f}, rmw {r['rmw']:.0f}",
        )
    suite.values["micro"] = micro  # type: ignore[assignment]
    # The same loops as programs: native, bare Unicorn, uintr-emu, uintr-emu with the variant.
    prog = str(build("mem_loop", PROGRAMS / "mem_loop.c"))
    bare = [PY, str(ROOT / "benchmarks" / "bare_unicorn.py")]
    variant = [PY, __file__, "_variant", "vtlb-nofault", "run"]
    runners = {
        "native": [],
        "bare unicorn": bare,
        "uintr-emu": EMU,
        "uintr-emu, vtlb-nofault variant": variant,
    }
    iters = {"reg": 200, "load": 100, "store": 20, "rmw": 20}
    programs: dict[str, dict[str, float]] = {}
    for rname, pre in runners.items():
        zero = suite.measure(
            "memory", f"{rname}: mem_loop reg 0", [*pre, prog, "reg", "0"], 3, by="cpu"
        )
        rates = {}
        for kind, mil in iters.items():
            mil = max(1, int(mil * scale)) * (5 if rname == "native" else 1)
            m = suite.measure(
                "memory",
                f"{rname}: mem_loop {kind} {mil}",
                [*pre, prog, kind, str(mil)],
                1 if suite.quick else 2,
                by="cpu",
            )
            rates[kind] = MEM_LOOP_INSNS * mil / max(m.cpu - zero.cpu, 1e-6)
        programs[rname] = rates
        suite.row(
            "memory",
            f"mem_loop under {rname}",
            rates["store"],
            "M insn/s",
            note=f"store (child CPU time); reg {rates['reg']:.0f}, load {rates['load']:.0f}, "
            f"rmw {rates['rmw']:.0f}; reg/store {rates['reg'] / rates['store']:.1f}x",
        )
    suite.values["mem_loop"] = programs  # type: ignore[assignment]
    # A real program: compute_bench under uintr-emu as it is and with the variant.
    cscale = "1" if suite.quick else "3"
    cprog = str(compute_program())
    a = suite.measure(
        "memory",
        f"uintr-emu: compute_bench {cscale}",
        [*EMU, cprog, cscale],
        1 if suite.quick else 2,
        by="cpu",
    )
    b = suite.measure(
        "memory",
        f"uintr-emu vtlb-nofault: compute_bench {cscale}",
        [*variant, cprog, cscale],
        1 if suite.quick else 2,
        by="cpu",
    )
    same = a.stdout == b.stdout
    r = suite.ratio("compute_variant_speedup", a.cpu / b.cpu)
    suite.row(
        "memory",
        f"compute_bench {cscale}: uintr-emu / vtlb-nofault variant",
        r,
        "x",
        note=f"CPU {a.cpu:.2f} s -> {b.cpu:.2f} s (wall {a.wall:.2f} -> {b.wall:.2f}); "
        f"output {'same' if same else 'DIFFERS'}",
    )


# --- real -----------------------------------------------------------------------------------


def section_real(suite: Suite) -> None:
    """Host programs natively, under qemu-x86_64 and under uintr-emu (benchmarks/real.py)."""
    sizes = real.QUICK if suite.quick else real.FULL
    repeat = suite.real_repeat or (1 if suite.quick else 3)
    qemu, qemu_note = ensure_qemu(suite)
    tools: dict[str, str | None] = {}
    missing: dict[str, str] = {}
    for command, package in real.TOOLS.items():
        tools[command], note = ensure_command(suite, command, package, real.find_tool)
        if note:
            missing[command] = note
    if qemu_note or missing:
        notes = {"qemu-x86_64": qemu_note, **missing}
        suite.row("real", "set-up", None, "", note="; ".join(f"{k}: {v}" for k, v in notes.items()))
    wdir = BUILD / "real"
    suite.log("real: preparing the inputs in build/bench/real (once per size)")
    work = real.workloads(
        sizes,
        wdir,
        tools,
        missing,
        qemu,
        build("volatile_loop", PROGRAMS / "volatile_loop.c"),
        build("hello", HELLO),
    )
    # One locale for every runner: sort's order and any message text do not depend on the
    # caller's environment.
    env = dict(os.environ, LC_ALL="C")
    results: dict[str, dict[str, real.Outcome]] = {}
    for w in work:
        if w.missing:
            suite.row("real", f"{w.label}", None, "", note=f"not run: {w.missing}")
            continue
        res: dict[str, real.Outcome] = {}
        native: tuple[str, str | None] | None = None
        for runner, cmd in w.commands(qemu, EMU):
            if w.out_file is not None:
                w.out_file.unlink(missing_ok=True)
            name = f"{w.label}: {runner}"
            m = suite.measure("real", name, cmd, repeat, check=False, env=env)
            written = real.sha256_file(w.out_file) if w.out_file and w.out_file.exists() else None
            digests = (m.stdout_sha256, written)
            status = real.judge(m.returncode, m.stderr, digests, native)
            if runner == "native":
                native = digests
            if status.startswith("differs"):
                suite.log(f"real: !!! {name}: OUTPUT DIFFERS FROM NATIVE: {status}")
            elif not m.ok():
                suite.log(f"real: {name}: {status}")
            ok = status == "ok"
            res[runner] = real.Outcome(
                status,
                m.wall if ok else None,
                suite.min_cpu("real", name) if ok else None,
                real.warnings_of(m.stderr) if runner == "uintr-emu" else [],
            )
            if runner == "native" and not ok:
                break  # nothing to compare against
        results[w.key] = res
        real_rows(suite, w, res, repeat)
    s = real.summarize(work, results)
    suite.values["real"] = {  # type: ignore[assignment]
        w.key: {
            "label": w.label,
            "cmd": w.argv,
            "missing": w.missing,
            **{r: asdict(o) for r, o in results.get(w.key, {}).items()},
        }
        for w in work
    }
    suite.values["real_sizes"] = asdict(sizes)  # type: ignore[assignment]
    suite.values["real_repeat"] = repeat
    suite.values["real_summary"] = asdict(s)  # type: ignore[assignment]
    excluded = "; ".join(f"{k}: {v}" for k, v in s.excluded.items())
    counted = f"over {len(s.counted)} of {len(work)} workloads" + (
        f" (not counted: {excluded})" if excluded else ""
    )
    if s.geomean is None or s.geomean_cpu is None:
        suite.row("real", "geometric mean uintr-emu / qemu", None, "x", note=counted)
        return
    g, gc, tg = s.geomean, s.geomean_cpu, real.TARGET_GEOMEAN
    suite.ratio("real_geomean_emu_vs_qemu", g)
    suite.ratio("real_geomean_emu_vs_qemu_cpu", gc)
    suite.row(
        "real",
        "geometric mean uintr-emu / qemu",
        g,
        "x",
        f"<= {tg:g}",
        g <= tg,
        f"{counted}; by CPU time {gc:.2f}: {verdict(gc <= tg)}",
    )
    suite.row(
        "real",
        f"workloads above {real.TARGET_EACH:g}x qemu (loop: {real.TARGET_LOOP:g}x)",
        len(s.above),
        "",
        "0",
        not s.above,
        f"{', '.join(s.above) or 'none'} of {len(s.counted)}; by CPU time "
        f"{', '.join(s.above_cpu) or 'none'}: {verdict(not s.above_cpu)}",
    )


def real_rows(suite: Suite, w: real.Workload, res: dict[str, real.Outcome], repeat: int) -> None:
    """The table's rows for one workload: uintr-emu / native with the three times, then
    uintr-emu / qemu against the workload's bound; a failure or a wrong output instead of a
    number."""
    n, q, e = res.get("native"), res.get("qemu"), res.get("uintr-emu")
    bound = f"<= {w.limit():g}"
    if n is None or not n.ok():
        why = n.status if n else "not run"
        suite.row("real", f"{w.label}: native", None, "", note=f"native run {why}")
        return
    times = f"native {n.wall:.3f} s (CPU {n.cpu:.3f})"
    if q is not None:
        times += f", qemu {q.wall:.3f} s (CPU {q.cpu:.3f})" if q.ok() else f", qemu {q.status}"
    if e is None or not e.ok():
        status = e.status if e else "not run"
        differs = status.startswith("differs: ")
        loud = (
            f"OUTPUT DIFFERS from native: {status.removeprefix('differs: ')}" if differs else status
        )
        suite.row("real", f"{w.label}: uintr-emu", None, "", bound, False, f"{loud}; {times}")
        return
    assert n.wall is not None and e.wall is not None
    warned = f"; uintr-emu warned: {'; '.join(e.warnings)}" if e.warnings else ""
    rn = suite.ratio(f"real_{w.key}_emu_vs_native", real.per(e.wall, n.wall))
    suite.row(
        "real",
        f"{w.label}: uintr-emu / native",
        rn,
        "x",
        note=f"uintr-emu {e.wall:.3f} s (CPU {e.cpu:.3f}), {times}; best of {repeat}{warned}",
    )
    if q is None or not q.ok():
        why = q.status if q else "qemu-x86_64 not installed"
        suite.row("real", f"{w.label}: uintr-emu / qemu", None, "x", bound, None, why)
        return
    rq = suite.ratio(f"real_{w.key}_emu_vs_qemu", real.per(e.wall, q.wall))
    rc = suite.ratio(f"real_{w.key}_emu_vs_qemu_cpu", real.per(e.cpu, q.cpu))
    suite.row(
        "real",
        f"{w.label}: uintr-emu / qemu",
        rq,
        "x",
        bound,
        rq <= w.limit(),
        f"qemu {real.per(q.wall, n.wall):.1f}x native; by CPU time {rc:.2f}: "
        f"{verdict(rc <= w.limit())}",
    )


# --- output ---------------------------------------------------------------------------------


def fmt_value(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):  # a count
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def print_table(rows: list[Row]) -> None:
    w = max(len(r.metric) for r in rows) + 2
    print(f"{'section':<9}{'metric':<{w}}{'value':>12} {'unit':<12}{'target':<18}{'result':<7}note")
    last = None
    for r in rows:
        if last is not None and r.section != last:
            print()
        last = r.section
        print(
            f"{r.section:<9}{r.metric:<{w}}{fmt_value(r.value):>12} {r.unit:<12}"
            f"{r.target:<18}{r.result:<7}{r.note}"
        )


def plot(suite: Suite, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # (title, [(label, value)], a dashed line at, scale): "linear", "log", or "ratio" (log, the
    # bars starting at 1x)
    panels: list[tuple[str, list[tuple[str, float]], float | None, str]] = []
    rt = suite.ratios
    targeted = [(k, rt[k] / TARGETS[k]) for k in ("emu_vs_bare", "emu4_vs_4bare") if k in rt]
    if "pingpong_rate" in rt:
        targeted.append(("pingpong: 50k/s / rate", TARGETS["pingpong_rate"] / rt["pingpong_rate"]))
    for k, t in (
        ("static_wall", "hello_wall"),
        ("static_rss_mb", "hello_rss_mb"),
        ("dynamic_wall", "hello_dynamic_wall"),
        ("dynamic_rss_mb", "hello_rss_mb"),
    ):
        if k in suite.values:
            targeted.append((k, suite.values[k] / TARGETS[t]))
    if "emu_vs_qiling" in rt:
        targeted.append(("emu / qiling", rt["emu_vs_qiling"]))
    if "real_geomean_emu_vs_qemu" in rt:
        g = rt["real_geomean_emu_vs_qemu"] / real.TARGET_GEOMEAN
        targeted.append((f"real: geomean emu / qemu / {real.TARGET_GEOMEAN:g}", g))
    if targeted:
        panels.append(("vs target (<= 1 meets it)", targeted, 1.0, "linear"))
    labels = {
        "qemu_vs_native": "qemu-x86_64",
        "bare_vs_native": "bare unicorn",
        "emu_vs_native": "uintr-emu",
        "emu4_vs_native4": "uintr-emu 4 thr / native 4 thr",
    }
    vs_native = [(lab, rt[k]) for k, lab in labels.items() if k in rt]
    if vs_native:
        panels.append(("compute: x native (log)", vs_native, None, "ratio"))
    scal = [
        (k.replace("scaling_ns_", "").replace("c", " counted") + " thr", v)
        for k, v in suite.values.items()
        if k.startswith("scaling_ns_")
    ]
    if scal:
        panels.append(("scaling: host ns / guest insn", scal, None, "linear"))
    rates = [
        (k.replace("_rate", ""), rt[k])
        for k in ("pingpong_rate", "self_ipi_rate", "many_senders_rate")
        if k in rt
    ]
    if rates:
        panels.append(("uipi: events / host s", rates, None, "linear"))
    for kind, title in (
        ("qemu", f"real programs: uintr-emu / qemu (log; dashed: {real.TARGET_EACH:g}x)"),
        ("native", "real programs: uintr-emu / native (log)"),
    ):
        data = [
            (v["label"], rt[f"real_{k}_emu_vs_{kind}"])
            for k, v in suite.values.get("real", {}).items()  # type: ignore[attr-defined]
            if f"real_{k}_emu_vs_{kind}" in rt
        ]
        if kind == "qemu" and "real_geomean_emu_vs_qemu" in rt:
            data.append(("geometric mean", rt["real_geomean_emu_vs_qemu"]))
        if data:
            panels.append((title, data, real.TARGET_EACH if kind == "qemu" else None, "ratio"))
    micro = suite.values.get("micro")
    if micro:
        data = [(f"{k} ({kind})", v[kind]) for k, v in micro.items() for kind in ("store", "rmw")]
        panels.append(("plain Unicorn loops: M guest insn/s (reg loop ~2700)", data, None, "log"))
    if not panels:
        return "nothing to plot"
    heights = [max(2.2, 0.28 * len(p[1]) + 1) for p in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (title, data, line, scale) in zip(axes[:, 0], panels, strict=True):
        names = [d[0] for d in data]
        vals = [d[1] for d in data]
        ax.barh(names, vals, color="tab:blue")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        if line is not None:
            ax.axvline(line, color="tab:red", linestyle="--")
        if scale != "linear":
            ax.set_xscale("log")
        if scale == "ratio":  # bars grow from 1x, so their lengths compare
            ax.set_xlim(left=min(1.0, *vals) * 0.9, right=max(vals) * 1.6)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {fmt_value(v)}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_micro":
        micro_main(sys.argv[2], float(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_variant":
        variant_main(sys.argv[2], sys.argv[3:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every section at small scale")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument(
        "--real-repeat",
        type=int,
        metavar="N",
        help="runs per measurement in the real section, the best kept (default 3; --quick 1)",
    )
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {','.join(SECTIONS)}")
    suite = Suite(args.quick, args.real_repeat)
    suite.log(f"uintr-emu benchmark suite: {','.join(only)}{' (quick)' if args.quick else ''}")
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        suite.log(
            f"warning: the machine is busy (load average {load:.2f} on {os.cpu_count()} "
            "CPUs): wall times will be inflated; CPU times are in results.json"
        )
    qemu, qemu_note = ensure_qemu(suite) if "compute" in only else (None, "")
    mpl = ensure_matplotlib(suite)
    info = machine_info()
    BUILD.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = {}
    for name in SECTIONS:
        if name not in only:
            continue
        t = time.perf_counter()
        try:
            if name == "compute":
                section_compute(suite, qemu, qemu_note)
            else:
                globals()[f"section_{name}"](suite)
        except (BenchError, SystemExit, subprocess.SubprocessError, OSError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            errors[name] = str(e)
            suite.row(name, "section failed", None, "", note=first[:120])
            suite.log(f"{name}: FAILED: {first}")
        suite.log(f"{name}: section done in {time.perf_counter() - t:.1f} s")
    info["loadavg_end"] = os.getloadavg()
    info["suite_seconds"] = round(time.perf_counter() - suite.t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    png = "matplotlib not available"
    if mpl:
        try:
            png = plot(suite, args.out / "results.png")
        except Exception as e:  # noqa: BLE001 - the table and JSON matter more than the chart
            png = f"plot failed: {e}"
    result = {
        "machine": info,
        "quick": args.quick,
        "sections": only,
        "targets": TARGETS,
        "rows": [asdict(r) for r in suite.rows],
        "ratios": suite.ratios,
        "values": suite.values,
        "runs": suite.runs,
        "errors": errors,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(
        f"uintr-emu benchmarks{' (quick)' if args.quick else ''}: {info['cpu_model']}, "
        f"{info['cpus']} CPUs, Python {info['python']}, unicorn {info['unicorn']}, "
        f"load average {info['loadavg_start'][0]:.2f} at start, {info['date']}"
    )
    print_table(suite.rows)
    fails = sum(r.result == "FAIL" for r in suite.rows)
    passes = sum(r.result == "PASS" for r in suite.rows)
    cpu_pass = sum(r.result != "" and r.note.endswith(": PASS") for r in suite.rows)
    cpu_fail = sum(r.result != "" and r.note.endswith(": FAIL") for r in suite.rows)
    print(
        f"\ntargets (result column: wall time): {passes} PASS, {fails} FAIL; judged by the "
        f"child's CPU time instead (notes): {cpu_pass} PASS, {cpu_fail} FAIL"
    )
    print(f"{info['suite_seconds']} s; {args.out / 'results.json'}; {png}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
