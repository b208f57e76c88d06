"""Medians, ratios and the printed tables of a benchmark run (pure functions)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MB = 1_000_000
MIB = 2**20


@dataclass
class Summary:
    """The medians of one configuration over its runs."""

    config: str
    label: str
    runs: int
    ok_runs: int
    images_per_s: float
    active_images_per_s: float
    mb_per_s: float
    cpu_ms_per_image: float
    peak_rss_sum_mib: float
    peak_rss_max_mib: float
    server_cpu_ms_per_image: float
    wall_s: float
    processes: int
    note: str = ""


def median(values: Iterable[float]) -> float:
    """The median of ``values``; 0.0 when there are none."""
    values = list(values)
    return statistics.median(values) if values else 0.0


def summarise(results: Iterable[Mapping[str, Any]], labels: Mapping[str, str] | None = None) -> list[Summary]:
    """One Summary per configuration, in first-seen order; figures are medians over the runs."""
    by_config: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_config.setdefault(r["config"], []).append(r)
    out = []
    for name, runs in by_config.items():
        good = [r for r in runs if r["images"] and r["wall"] > 0]
        notes = sorted({r["note"] for r in runs if r.get("note")})
        out.append(
            Summary(
                config=name,
                label=(labels or {}).get(name, name),
                runs=len(runs),
                ok_runs=sum(1 for r in runs if r["ok"]),
                images_per_s=median(r["images"] / r["wall"] for r in good),
                active_images_per_s=median(r["images"] / r["active"] for r in good if r["active"] > 0),
                mb_per_s=median(r["bytes_downloaded"] / r["wall"] / MB for r in good),
                cpu_ms_per_image=median(1000 * r["cpu"] / r["images"] for r in good),
                peak_rss_sum_mib=median(r["peak_rss_sum"] / MIB for r in runs),
                peak_rss_max_mib=median(r["peak_rss_max"] / MIB for r in runs),
                server_cpu_ms_per_image=median(1000 * r["server_cpu"] / r["images"] for r in good),
                wall_s=median(r["wall"] for r in runs),
                processes=max(r.get("processes", 1) for r in runs),
                note="; ".join(notes)[:300],
            )
        )
    return out


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when there is no reference."""
    return value / reference if reference else None


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def format_results(summaries: list[Summary], stock: str = "images", native: str = "curl") -> str:
    """The results table and the ratio table, as Markdown."""
    rows = []
    for s in summaries:
        rows.append([
            s.config, s.label, f"{s.ok_runs}/{s.runs}", f"{s.images_per_s:.0f}", f"{s.active_images_per_s:.0f}",
            f"{s.mb_per_s:.1f}", f"{s.cpu_ms_per_image:.2f}", f"{s.peak_rss_sum_mib:.0f}",
            f"{s.peak_rss_max_mib:.0f}", f"{s.server_cpu_ms_per_image:.2f}", f"{s.wall_s:.1f}",
        ])
    results = _table(
        ["config", "what", "ok runs", "img/s (wall)", "img/s (first→last file)", "MB/s", "CPU ms/img",
         "peak RSS sum MiB", "max RSS/proc MiB", "server CPU ms/img", "wall s"],
        rows,
    )
    by_name = {s.config: s for s in summaries}
    ratio_rows = []
    for s in summaries:
        row = [s.config]
        for ref_name in (stock, native):
            ref = by_name.get(ref_name)
            row += [
                _fmt_ratio(ratio(s.images_per_s, ref.images_per_s) if ref else None),
                _fmt_ratio(ratio(s.cpu_ms_per_image, ref.cpu_ms_per_image) if ref else None),
                _fmt_ratio(ratio(s.peak_rss_sum_mib, ref.peak_rss_sum_mib) if ref else None),
            ]
        ratio_rows.append(row)
    ratios = _table(
        ["config", f"img/s vs {stock}", f"CPU/img vs {stock}", f"RSS vs {stock}",
         f"img/s vs {native}", f"CPU/img vs {native}", f"RSS vs {native}"],
        ratio_rows,
    )
    notes = [f"- {s.config}: {s.note}" for s in summaries if s.note]
    return results + "\n\nRatios (medians; MB/s ratios equal img/s ratios, same corpus):\n\n" + ratios + (
        "\n\nNotes:\n" + "\n".join(notes) if notes else ""
    )


def format_net_of_startup(summaries: list[Summary], images: int, idle_wall: float, idle_cpu: float,
                          prefix: str = "node") -> str:
    """Our node's figures with the start-up and shutdown of an empty-queue run taken out, as Markdown.

    A node runs for days; a 3,000-image run is short enough that Scrapy's start-up (imports,
    crawler set-up) and the idle close weigh on every figure. ``idle_wall`` and ``idle_cpu`` are
    one process's wall and CPU seconds with nothing to do; processes start in parallel, so the
    wall is taken out once and the CPU once per process.
    """
    rows = []
    for s in summaries:
        if not s.config.startswith(prefix) or not s.images_per_s:
            continue
        wall = images / s.images_per_s
        cpu = s.cpu_ms_per_image * images / 1000
        net_wall = wall - idle_wall
        net_cpu = cpu - s.processes * idle_cpu
        rows.append([
            s.config, f"{s.images_per_s:.0f}", f"{images / net_wall:.0f}" if net_wall > 0 else "-",
            f"{s.cpu_ms_per_image:.2f}", f"{1000 * net_cpu / images:.2f}" if net_cpu > 0 else "-",
        ])
    if not rows:
        return ""
    return (
        f"Net of start-up (one process with an empty queue: wall {idle_wall:.2f} s, CPU {idle_cpu:.2f} s):\n\n"
        + _table(["config", "img/s (wall)", "img/s net", "CPU ms/img", "CPU ms/img net"], rows)
    )


def rss_at_progress(
    samples: list[tuple[float, int, int]], total: int, marks: tuple[float, ...] = (0.1, 0.5, 1.0)
) -> dict[float, int | None]:
    """RSS at the first sample whose progress reached each mark; samples are (seconds, done, rss)."""
    out: dict[float, int | None] = {}
    for mark in marks:
        hit = next((rss for _t, done, rss in samples if done >= mark * total), None)
        out[mark] = hit
    return out
