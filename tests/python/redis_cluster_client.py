"""A Redis Cluster client (redis-py's RedisCluster) against a Radiant system: one key in
every one of the 16,384 hash slots is written, then read back and compared.

Run by tests/resp_system.rs, which kills a herald (-9) and moves a shard while this
writes. Every write is a SET of a value derived from the key, so retrying one whose
outcome was unknown is harmless; any error is retried until RETRY_SECONDS pass.

Usage: redis_cluster_client.py HISTORY PORT [PORT...]
  HISTORY  where every operation is written as a history for `radiant check-history`
  PORT     RESP ports of the system's radiants
Prints `written N` as it goes and `verified N keys, R retries` at the end; exits 1 on a
wrong or missing value.
"""

import json

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


class History:
    """Every attempt as one operation; a failed attempt's outcome is unknown, and the
    client goes on as a new one (a client has at most one operation in flight)."""

    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8")
        self.client = 0
        self.retries = 0

    def attempt(self, op, key, value, call):
        started = time.monotonic_ns()
        record = {"client": self.client, "op": op, "key": key, "value": value,
                  "call_ns": started, "return_ns": None, "output": None, "ok": False}
        try:
            result = call()
        except RedisError:
            self.file.write(json.dumps(record) + "\n")
            self.client += 1
            self.retries += 1
            raise
        record["return_ns"] = time.monotonic_ns()
        record["ok"] = True
        if op == "get":
            record["output"] = result
        self.file.write(json.dumps(record) + "\n")
        return result

    def with_retries(self, op, key, value, call):
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                return self.attempt(op, key, value, call)
            except RedisError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"still failing after {RETRY_SECONDS}s: {error!r}")
                time.sleep(0.05)


def main():
    history = History(sys.argv[1])
    ports = [int(port) for port in sys.argv[2:]]
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", port) for port in ports],
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
    )
    keys = one_key_per_slot()
    for written, key in enumerate(keys, start=1):
        value = f"value of {key}"
        history.with_retries("put", key, value, lambda: client.set(key, value))
        if written % 1000 == 0:
            print(f"written {written}", flush=True)
    wrong = []
    for key in keys:
        value = history.with_retries("get", key, None, lambda: client.get(key))
        if value != f"value of {key}":
            wrong.append((key, value))
    history.file.close()
    if wrong:
        print(f"{len(wrong)} keys read back wrong, first: {wrong[:5]}", flush=True)
        return 1
    print(f"verified {len(keys)} keys, {history.retries} retries", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
