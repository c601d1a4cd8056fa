#!/usr/bin/env python3
"""Summarises benches/tls.sh output (JSON lines on stdin): per connection count, the
median puts/s and put p99 of plaintext and TLS runs, and the TLS/plaintext ratio."""
import json
import statistics
import sys

runs = {}
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    run = json.loads(line)
    if run["bench"]["errors"] > 0:
        # An election under load answers NotHerald and the bench does not follow it.
        print(f"left out: {run['mode']} {run['connections']} rep {run['rep']}: "
              f"{run['bench']['errors_by_kind']}", file=sys.stderr)
        continue
    runs.setdefault((run["connections"], run["mode"]), []).append(run["bench"])

print("| connections | plaintext puts/s (runs) | TLS puts/s (runs) | ratio | plaintext p99 | TLS p99 |")
print("|---:|---|---|---:|---:|---:|")
for connections in sorted({key[0] for key in runs}):
    plain = runs.get((connections, "plain"), [])
    tls = runs.get((connections, "tls"), [])
    if not plain or not tls:
        continue
    rate = lambda benches: statistics.median(b["puts_per_s"] for b in benches)
    p99 = lambda benches: statistics.median(b["put_p99_us"] for b in benches) / 1000
    each = lambda benches: " / ".join(f"{b['puts_per_s']:,.0f}" for b in benches)
    print(
        f"| {connections} | {rate(plain):,.0f} ({each(plain)}) | {rate(tls):,.0f} ({each(tls)}) "
        f"| {rate(tls) / rate(plain):.2f} | {p99(plain):.2f} ms | {p99(tls):.2f} ms |"
    )
