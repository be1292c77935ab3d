"""Edge benchmark: simulated LL-HLS viewers through Varnish and through nginx, against direct.

The viewers, the origin and the media are bench/origin.py's (one uvicorn origin replaying
720p30 CMAF in 200 ms parts; each viewer on one keep-alive connection doing hls.js's
blocking playlist reload, then a GET of each new part). For each viewer count it runs
them straight at the origin, through deploy/nginx/edge.conf (real nginx) and through
deploy/varnish/golive.vcl (real varnishd), and prints per edge: origin requests per part
produced (the goal: flat, whatever the audience) and the part delay the edge adds over
the direct run of the same count, p50 and p99 (the goal of issue 15: <= 20 ms with
Varnish; nginx's cache lock wakes its waiters on a 500 ms timer).

    .venv/bin/python bench/edge.py
    .venv/bin/python bench/edge.py --viewers 100,1000,5000 --seconds 10 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.origin import PART, encode_media, run_once  # noqa: E402

GOAL_ADDED_MS = 20.0  # Varnish: added part delay over direct, p50 and p99
FLAT_RATIO = 1.5  # origin requests per part at the top count at most this much above the lowest
MODES = ("direct", "edge", "varnish")
NAMES = {"direct": "direct", "edge": "nginx", "varnish": "varnish"}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def combine(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of one mode at one count as one row: medians, errors summed."""
    out = dict(rows[0])
    for key in ("p50", "p99", "max", "origin_cpu", "edge_cpu", "req_per_part", "delivered_s",
                "expected_s"):
        out[key] = median([r[key] for r in rows])
    out["errors"] = sum(r["errors"] + r["non200"] for r in rows)
    out["rounds"] = len(rows)
    return out


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nLL-HLS edge, 1 rendition 720p30 ~3 Mb/s, {PART * 1000:g} ms parts, {args.seconds:g} s "
          f"per run after {args.warmup:g} s warmup, {args.rounds} round(s), {os.cpu_count()} "
          "cores shared by origin, edge and load generators; CPU: 100% = one core")
    header = (f"{'mode':<8} {'viewers':>7} {'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>8} "
              f"{'+p99 ms':>8} {'parts/s':>8} {'of':>7} {'req/part':>8} {'orig cpu':>8} "
              f"{'edge cpu':>8} {'errors':>6}")
    print(header)
    print("-" * len(header))
    direct = {r["viewers"]: r for r in rows if r["mode"] == "direct"}
    for r in sorted(rows, key=lambda r: (r["viewers"], MODES.index(r["mode"]))):
        peer = direct.get(r["viewers"])
        added = (f"{r['p50'] - peer['p50']:>8.1f} {r['p99'] - peer['p99']:>8.1f}"
                 if peer is not None and r["mode"] != "direct" else f"{'-':>8} {'-':>8}")
        edge_cpu = f"{r['edge_cpu']:.0%}" if r["mode"] != "direct" else "-"
        print(f"{NAMES[r['mode']]:<8} {r['viewers']:>7} {r['p50']:>7.1f} {r['p99']:>7.1f} {added} "
              f"{r['delivered_s']:>8.0f} {r['expected_s']:>7.0f} {r['req_per_part']:>8.1f} "
              f"{r['origin_cpu']:>8.0%} {edge_cpu:>8} {r['errors']:>6}")
    print("p50/p99: part arrival at the origin -> part body received by a viewer; +p50/+p99: "
          "minus the direct run's of the same count; req/part: origin requests per part "
          "produced; errors: failed connections and non-200 answers")
    for mode in ("varnish", "edge"):
        series = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["viewers"])
        if len(series) >= 2:
            low, high = series[0], series[-1]
            flat = high["req_per_part"] <= FLAT_RATIO * low["req_per_part"]
            points = ", ".join(f"{r['viewers']}: {r['req_per_part']:.1f}" for r in series)
            print(f"goal {NAMES[mode]}: origin requests per part flat: "
                  f"{'MET' if flat else 'NOT MET'} ({points})")
    for r in sorted((r for r in rows if r["mode"] == "varnish"), key=lambda r: r["viewers"]):
        peer = direct.get(r["viewers"])
        if peer is None:
            continue
        p50, p99 = r["p50"] - peer["p50"], r["p99"] - peer["p99"]
        met = p50 <= GOAL_ADDED_MS and p99 <= GOAL_ADDED_MS and r["errors"] == 0
        print(f"goal varnish adds <= {GOAL_ADDED_MS:g} ms ({r['viewers']} viewers): "
              f"{'MET' if met else 'NOT MET'} ({p50:+.1f} ms p50, {p99:+.1f} ms p99)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--viewers", default="100,1000", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated: direct, edge (nginx), varnish")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every run, modes interleaved (reversed every other "
                        "round); the table shows medians")
    args = parser.parse_args()
    args.skip = True  # delta updates, as hls.js asks for them
    counts = [int(c) for c in args.viewers.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("encoding 20 s of 720p30 test media ...", file=sys.stderr, flush=True)
    media = encode_media(20.0)
    from golive.store import generate_key_pair

    keys = generate_key_pair("ES256")  # unused by public runs; run_once takes a pair
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(max(1, args.rounds)):
        for count in counts:
            for mode in (modes if round_ % 2 == 0 else modes[::-1]):
                print(f"{NAMES[mode]}: {count} viewers for {args.seconds:g} s ...",
                      file=sys.stderr, flush=True)
                try:
                    row = run_once(mode, count, args, media, keys)
                except (RuntimeError, OSError) as exc:
                    print(f"{mode}: {count} viewers failed: {exc!r}", file=sys.stderr)
                    continue
                runs.setdefault((mode, count), []).append(row)
    print_table([combine(rows) for rows in runs.values()], args)


if __name__ == "__main__":
    main()
