"""`make corpus`: every corpus workload, natively and under uintr-emu, compared; a summary on
stdout and in build/corpus-report.md.

    python tests/corpus/run.py [-j N] [NAME_GLOB ...]

Exit status 0 when every workload either matches or differs in exactly the way its `known`
cause says (and 1 otherwise: an unexpected difference, or a known one that went away).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus.runner import REPO_ROOT, Outcome, run_workload  # noqa: E402
from corpus.workloads import CORPUS  # noqa: E402


def verdict(o: Outcome) -> str:
    if o.missing:
        return "not run"
    if o.workload.known:
        return "known difference" if o.differences else "FIXED (remove its known mark)"
    return "match" if o.matches else "DIFFERS"


def report(outcomes: list[Outcome], seconds: float) -> str:
    ran = [o for o in outcomes if not o.missing]
    same = [o for o in ran if o.matches]
    pct = 100.0 * len(same) / len(ran) if ran else 0.0
    lines = [
        "# Corpus report",
        "",
        f"{len(same)} of {len(ran)} workloads match natively ({pct:.1f}%); "
        f"{len(outcomes) - len(ran)} not run; {seconds:.0f} s.",
        "",
    ]
    for o in outcomes:
        if o.missing:
            lines.append(f"- `{o.workload.name}`: not run: {o.missing}")
    for o in outcomes:
        if o.differences:
            cause = f" (known: {o.workload.known})" if o.workload.known else ""
            lines += ["", f"## {o.workload.name}: {verdict(o)}{cause}", "", "```"]
            lines += [d for d in o.differences]
            lines.append("```")
        elif o.workload.known and not o.missing:
            lines += ["", f"## {o.workload.name}: {verdict(o)}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", type=int, default=2, help="workloads run at once (default 2)")
    ap.add_argument("names", nargs="*", help="only the workloads matching these globs")
    ap.add_argument("--report", default=str(REPO_ROOT / "build" / "corpus-report.md"))
    args = ap.parse_args()
    chosen = [
        w for w in CORPUS if not args.names or any(fnmatch.fnmatch(w.name, g) for g in args.names)
    ]
    start = time.monotonic()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max(1, args.j)) as pool:
        for i, o in enumerate(pool.map(run_workload, chosen), 1):
            t = o.emulated.seconds if o.emulated else 0.0
            print(f"[{i}/{len(chosen)}] {o.workload.name}: {verdict(o)} ({t:.1f} s)", flush=True)
            outcomes.append(o)
    text = report(outcomes, time.monotonic() - start)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text, end="")
    print(f"(written to {args.report})")
    bad = [o for o in outcomes if verdict(o) in ("DIFFERS", "FIXED (remove its known mark)")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
