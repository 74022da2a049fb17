"""`--timeline-png`: a one-picture summary of a run, drawn with matplotlib (optional).

One lane per virtual CPU shows which guest thread ran when (one color per thread); user-interrupt
handlers are marked on the lane where they ran (a dark bar along the lane's top edge and a
triangle at each delivery); arrows go from each SENDUIPI to the delivery it caused (a dot at the
sender when arrows would be too many). Time is virtual, in microseconds. When the user interrupts
all happen within a small part of the run, a second panel zooms in on them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from . import Event
from .timeline import Timeline, TimelineModel

MAX_ARROWS = 400  # beyond this, send -> delivery links are drawn as plain lines
MAX_LEGEND_THREADS = 16
ZOOM_IF_BELOW = 0.4  # zoom panel when the UIPI activity spans less than this part of the run
HANDLER = "#b2182b"
SEND = "#2166ac"


def _import_matplotlib():  # type: ignore[no-untyped-def]
    try:
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import FancyArrowPatch, Patch
    except ImportError as e:
        raise RuntimeError(
            "--timeline-png needs matplotlib, which is not installed: pip install matplotlib"
        ) from e
    return Figure, LineCollection, Line2D, Patch, FancyArrowPatch


def require_matplotlib() -> None:
    """Raise the RuntimeError of `render_png` now if matplotlib is missing (check before a run)."""
    _import_matplotlib()


def render_png(
    events: Iterable[Event] | Timeline, path: str | os.PathLike[str], *, cpus: int | None = None
) -> None:
    """Draw the summary picture into the PNG file `path`, from a run's events (e.g.
    `Recorder.events`) or from a `Timeline` sink that saw the run (no second copy of the events).

    `cpus`, the machine's CPU count, gives idle CPUs a lane too (default: the CPUs that appear
    in the events). Raises RuntimeError if matplotlib is not installed.
    """
    Figure, LineCollection, Line2D, Patch, FancyArrowPatch = _import_matplotlib()
    if isinstance(events, Timeline):
        model = events.model
    else:
        model = TimelineModel()
        for ev in events:
            model(ev)
    runs = model.closed_runs()
    lanes = sorted(model.cpus | set(range(cpus or 0))) or [0]
    lane = {cpu: i for i, cpu in enumerate(lanes)}
    cpu_count = f"{len(lanes)} CPUs" if cpus else f"{len(lanes)} CPUs with events"
    tids = sorted({r.tid for r in runs})
    palette = _palette(len(tids))
    color = {tid: palette[i] for i, tid in enumerate(tids)}
    bars_of: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for r in runs:
        end = r.end if r.end is not None else r.start
        bars_of.setdefault((r.tid, r.cpu), []).append((r.start / 1000, (end - r.start) / 1000))
    handlers = [(h, model.end_of(h)) for h in model.handlers]
    links = [(model.sends[s], model.handlers[h]) for s, h in model.flows]
    end_us = max(model.t_end, 1) / 1000

    windows = [(0.0, end_us)]
    zoom = _zoom_window(model, handlers, end_us)
    if zoom is not None:
        windows.append(zoom)

    height = 0.55 * len(lanes) + 1.2
    fig = Figure(figsize=(12, height * len(windows) + 0.9), dpi=110, layout="constrained")
    axes = fig.subplots(len(windows), 1, squeeze=False)[:, 0]
    for n, (ax, (x0, x1)) in enumerate(zip(axes, windows, strict=True)):
        for (tid, cpu), bars in sorted(bars_of.items()):
            ax.broken_barh(bars, (lane[cpu] - 0.3, 0.6), facecolors=color[tid], edgecolor="none")
        # Handlers: dark red over the thread's color, a triangle above each delivery.
        hbars: dict[int, list[tuple[float, float]]] = {}
        for h, end in handlers:
            hbars.setdefault(lane.get(h.cpu, 0), []).append(
                (h.start / 1000, (end - h.start) / 1000)
            )
        for y, bars in sorted(hbars.items()):
            ax.broken_barh(
                bars, (y - 0.3, 0.6), facecolors=HANDLER, edgecolor=HANDLER, linewidth=0.6
            )
        if handlers:
            ax.plot(
                [h.start / 1000 for h, _ in handlers],
                [lane.get(h.cpu, 0) - 0.42 for h, _ in handlers],
                linestyle="none",
                marker="v",
                markersize=5,
                color=HANDLER,
            )
        # SENDUIPI: a dot on the sender's lane, on the side facing the receiver's lane, and an
        # arrow to the receiver's lane at the delivery it caused.
        ends = [_link_ends(lane.get(s.cpu, 0), lane.get(h.cpu, 0)) for s, h in links]
        linked = {id(s) for s, _ in links}
        for s in model.sends:
            if id(s) not in linked:
                ends_s = (lane.get(s.cpu, 0) + 0.42, 0.0)
                ax.plot(
                    [s.end / 1000],
                    [ends_s[0]],
                    linestyle="none",
                    marker="o",
                    markersize=3.5,
                    markerfacecolor="white",
                    color=SEND,
                )
        if links:
            ax.plot(
                [s.end / 1000 for s, _ in links],
                [a for a, _ in ends],
                linestyle="none",
                marker="o",
                markersize=3.5,
                color=SEND,
            )
        visible = [
            (s, h, e)
            for (s, h), e in zip(links, ends, strict=True)
            if x0 <= s.end / 1000 <= x1 or x0 <= h.start / 1000 <= x1
        ]
        if len(visible) <= MAX_ARROWS:
            for s, h, (ya, yb) in visible:
                ax.add_patch(
                    FancyArrowPatch(
                        (s.end / 1000, ya),
                        (h.start / 1000, yb),
                        arrowstyle="-|>",
                        mutation_scale=8,
                        color=SEND,
                        linewidth=0.8,
                        shrinkA=0,
                        shrinkB=0,
                    )
                )
        else:
            segs = [[(s.end / 1000, ya), (h.start / 1000, yb)] for s, h, (ya, yb) in visible]
            ax.add_collection(LineCollection(segs, colors=SEND, linewidths=0.4, alpha=0.5))
        ax.set_xlim(x0, x1 if x1 > x0 else x0 + 1)
        ax.set_ylim(len(lanes) - 0.4, -0.6)
        ax.set_yticks(range(len(lanes)), [f"cpu{c}" for c in lanes])
        ax.set_xlabel("virtual time (µs)")
        ax.grid(axis="x", linewidth=0.3, alpha=0.5)
        ax.set_title("whole run" if n == 0 else "user interrupts (zoomed)", fontsize=9, loc="left")

    handles = [
        Patch(facecolor=color[t], label=f"tid {t} (pid {model.pid_of.get(t, t)})")
        for t in tids[:MAX_LEGEND_THREADS]
    ]
    if len(tids) > MAX_LEGEND_THREADS:
        handles.append(
            Patch(facecolor="white", label=f"... {len(tids) - MAX_LEGEND_THREADS} " "more threads")
        )
    if handlers:
        handles.append(
            Line2D(
                [],
                [],
                color=HANDLER,
                marker="v",
                linewidth=3,
                label="user-interrupt handler (delivery)",
            )
        )
    if model.sends:
        handles.append(
            Line2D(
                [],
                [],
                color=SEND,
                marker="o",
                markersize=4,
                linewidth=0.8,
                label="SENDUIPI -> delivery",
            )
        )
    axes[0].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False
    )
    fig.suptitle(
        f"uintr-emu: {cpu_count}, {len(tids)} threads, {len(model.sends)} "
        f"SENDUIPI, {len(model.handlers)} deliveries, {end_us:,.1f} µs virtual",
        fontsize=10,
    )
    fig.savefig(path, format="png")


def _zoom_window(model: TimelineModel, handlers: list, end_us: float):  # type: ignore[no-untyped-def]
    """The busiest stretch of user-interrupt activity (the middle half of the sends and
    deliveries, widened to whole handlers), if it is a small part of the run; else None."""
    times = sorted([s.end for s in model.sends] + [h.start for h in model.handlers])
    if not times:
        return None
    lo, hi = times[len(times) // 4], times[(3 * len(times)) // 4]
    hi = max([hi] + [end for h, end in handlers if lo <= h.start <= hi])
    lo, hi = lo / 1000, hi / 1000
    pad = max((hi - lo) * 0.05, end_us * 0.002, 0.01)
    lo, hi = max(0.0, lo - pad), min(end_us, hi + pad)
    return (lo, hi) if hi - lo < ZOOM_IF_BELOW * end_us else None


def _link_ends(sender: int, receiver: int) -> tuple[float, float]:
    """y of an arrow's tail and head: the edges of the two lanes that face each other (lanes
    grow downwards); within one lane (a self-IPI), from the bottom edge to the top edge."""
    if receiver < sender:
        return sender - 0.3, receiver + 0.3
    if receiver > sender:
        return sender + 0.3, receiver - 0.3
    return sender + 0.42, receiver - 0.3


def _palette(n: int) -> list[str]:
    base = [
        "#4e79a7",
        "#f28e2b",
        "#59a14f",
        "#edc948",
        "#76b7b2",
        "#af7aa1",
        "#ff9da7",
        "#9c755f",
        "#bab0ac",
        "#86bcb6",
        "#d4a6c8",
        "#8cd17d",
    ]
    return [base[i % len(base)] for i in range(n)]
