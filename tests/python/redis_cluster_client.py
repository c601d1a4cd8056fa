"""A Redis Cluster client (redis-py's RedisCluster) against a Radiant system: one key in
every one of the 16,384 hash slots is written, then read back and compared.

Run by tests/resp_system.rs, which kills a herald (-9) and moves a shard while this
writes. Every write is a SET of a value derived from the key, so retrying one whose
outcome was unknown is harmless; any error is retried until RETRY_SECONDS pass.

Usage: redis_cluster_client.py PORT [PORT...]   (RESP ports of the system's radiants)
Prints `written N` as it goes and `verified N keys, R retries` at the end; exits 1 on a
wrong or missing value.
"""

import sys
import time

from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

SLOTS = 16384
RETRY_SECONDS = 30.0


def one_key_per_slot():
    keys = {}
    n = 0
    while len(keys) < SLOTS:
        key = f"key:{n}"
        keys.setdefault(key_slot(key.encode()), key)
        n += 1
    return [keys[slot] for slot in range(SLOTS)]


def with_retries(operation, counter):
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return operation()
        except RedisError as error:
            counter[0] += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"still failing after {RETRY_SECONDS}s: {error!r}")
            time.sleep(0.05)


def main():
    ports = [int(port) for port in sys.argv[1:]]
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", port) for port in ports],
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
    )
    retries = [0]
    keys = one_key_per_slot()
    for written, key in enumerate(keys, start=1):
        with_retries(lambda: client.set(key, f"value of {key}"), retries)
        if written % 1000 == 0:
            print(f"written {written}", flush=True)
    wrong = []
    for key in keys:
        value = with_retries(lambda: client.get(key), retries)
        if value != f"value of {key}":
            wrong.append((key, value))
    if wrong:
        print(f"{len(wrong)} keys read back wrong, first: {wrong[:5]}", flush=True)
        return 1
    print(f"verified {len(keys)} keys, {retries[0]} retries", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
