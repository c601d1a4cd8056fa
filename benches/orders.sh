#!/usr/bin/env bash
# End-to-end throughput of a formed system of 1, 2 or 3 orders on this machine
# (docs/performance.md, "Throughput of 1, 2 and 3 orders"). Starts 3 x ORDERS radiants
# in a ring on 127.0.0.1 (ports from BASE_PORT), waits until they have formed and every
# order serves its shards, runs `radiant bench` against them and stops them.
#
#   benches/orders.sh ORDERS [bench arguments...]
#   benches/orders.sh 2 --connections 24 --duration 8
#
# Every radiant is killed by PID on exit (also on failure or Ctrl-C); formation waits
# at most 60 s.
set -euo pipefail
orders=${1:?usage: benches/orders.sh ORDERS [bench arguments...]}
shift
radiant=${RADIANT:-target/release/radiant}
base=${BASE_PORT:-27000}
count=$((orders * 3))
root=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$root"
}
trap cleanup EXIT

for ((n = 0; n < count; n++)); do
    neighbor=$(( base + ((n + 1) % count) * 2 ))
    mkdir -p "$root/r$n"
    cat > "$root/r$n.toml" <<EOF
my_ip = "127.0.0.1"
my_port = $(( base + n * 2 ))
client_ip = "127.0.0.1"
client_port = $(( base + n * 2 + 1 ))
data_dir = "$root/r$n"
log_level = "warn"
neighbor_ip = "127.0.0.1"
neighbor_port = $neighbor
bootstrap_expect = $count
cluster_secret = "benches-orders-secret-0123456789"
order_size = 3
EOF
    "$radiant" start --config "$root/r$n.toml" 2> "$root/r$n.log" &
    pids+=($!)
done

entry="127.0.0.1:$(( base + 1 ))"
for ((tries = 0; tries < 600; tries++)); do
    if status=$("$radiant" status --json --addr "$entry" 2>/dev/null) &&
        echo "$status" | python3 -c '
import json, sys
s = json.load(sys.stdin)["system"]
orders = s["orders"]
ok = len(orders) == int(sys.argv[1]) and all(o["herald"] for o in orders) and sum(o["shards"] for o in orders) == s["shard_count"]
sys.exit(0 if ok else 1)' "$orders"; then
        break
    fi
    sleep 0.1
done
if ((tries == 600)); then
    echo "benches/orders.sh: $count radiants did not form $orders orders within 60 s" >&2
    tail -n 5 "$root"/r*.log >&2
    exit 1
fi
sleep 1 # every herald has adopted its configuration and serves its shards
"$radiant" bench --addr "$entry" "$@"
