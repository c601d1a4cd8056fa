#!/usr/bin/env bash
# TLS against plaintext in one sitting (docs/performance.md, "TLS"): a three-radiant
# static order on loopback, started fresh for each run, alternating plaintext and TLS
# (mutual TLS on the peer links, TLS 1.3 on the client port), `radiant bench` puts at 16
# and 64 connections. Certificates come from openssl in a temporary directory.
#
#   benches/tls.sh [REPS] [SECONDS]        (default 3 reps of 6 s)
#
# Every radiant is killed by PID on exit (also on failure or Ctrl-C).
set -euo pipefail
reps=${1:-3}
seconds=${2:-6}
radiant=${RADIANT:-target/release/radiant}
base=${BASE_PORT:-27400}
root=$(mktemp -d)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() { stop; [[ -n ${KEEP:-} ]] || rm -rf "$root"; }
trap cleanup EXIT

cd "$root"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext
for n in 1 2 3; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out r$n.key 2>/dev/null
    openssl req -new -key r$n.key -out r$n.csr -subj "/CN=r$n" 2>/dev/null
    openssl x509 -req -in r$n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out r$n.pem \
        -days 2 -extfile ext 2>/dev/null
done
cd - > /dev/null

members=""
for n in 1 2 3; do
    members+="[[members]]
id = $n
peer = \"127.0.0.1:$((base + n * 10))\"
client = \"127.0.0.1:$((base + n * 10 + 1))\"
"
done

start_order() {  # $1: plain or tls
    rm -rf "$root/d"*
    for n in 1 2 3; do
        local tls=""
        if [[ $1 == tls ]]; then
            tls="tls_cert_file = \"$root/r$n.pem\"
tls_key_file = \"$root/r$n.key\"
tls_ca_file = \"$root/ca.pem\""
        fi
        cat > "$root/r$n.toml" <<CONF
member_id = $n
my_ip = "127.0.0.1"
my_port = $((base + n * 10))
client_ip = "127.0.0.1"
client_port = $((base + n * 10 + 1))
data_dir = "$root/d$n"
log_level = "warn"
cluster_secret = "bench-tls-secret-0123456789abcdef"
$tls
$members
CONF
        "$radiant" start --config "$root/r$n.toml" 2>> "$root/r$n.log" &
        pids+=($!)
    done
}

herald() {  # the herald's client address, once one is elected (at most 20 s)
    local flags=("$@") n port
    for ((n = 0; n < 100; n++)); do
        for port in $((base + 11)) $((base + 21)) $((base + 31)); do
            if "$radiant" status --json --addr "127.0.0.1:$port" "${flags[@]}" 2>/dev/null |
                grep -q '"role":"herald"'; then
                echo "127.0.0.1:$port"
                return 0
            fi
        done
        sleep 0.2
    done
    echo "no herald elected; logs in $root" >&2
    return 1
}

for ((rep = 1; rep <= reps; rep++)); do
    for mode in plain tls; do
        for connections in 16 64; do
            start_order "$mode"
            flags=()
            [[ $mode == tls ]] && flags=(--tls-ca "$root/ca.pem")
            address=$(herald "${flags[@]}")
            line=$("$radiant" bench --addr "$address" --connections "$connections" \
                --duration "$seconds" --warmup 1 --value-bytes 256 --key-bytes 8 --json \
                "${flags[@]}") || true  # a run with errors (an election under load) still reports
            echo "{\"rep\":$rep,\"mode\":\"$mode\",\"connections\":$connections,\"bench\":$line}"
            stop
        done
    done
done
