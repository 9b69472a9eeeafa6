"""Measure the sandbox's throughput: ``python bench/sandbox_load.py``.

Starts a sandbox (``--no-record``) unless ``--url`` is given, then fires
getCredit and sendSMS requests over keep-alive connections from a few worker
processes (plain ``http.client``: ``requests`` costs more CPU per call than
the server, and would measure itself).  Prints one JSON line per endpoint.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import time
from urllib.parse import urlencode, urlsplit

from every8d.sandbox.server import SandboxServer

BODIES = {
    "getCredit": {"UID": "demo", "PWD": "secret"},
    "sendSMS": {"UID": "demo", "PWD": "secret", "MSG": "sandbox load test", "DEST": "0912345678"},
}
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _worker(url: str, endpoint: str, requests_per_worker: int, threads: int) -> tuple[int, int]:
    import threading

    parts = urlsplit(url)
    path = f"{parts.path.rstrip('/')}/API21/HTTP/{endpoint}.ashx"
    body = urlencode(BODIES[endpoint])
    counts = [0, 0]  # ok, failed
    lock = threading.Lock()

    def run(n: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        ok = failed = 0
        for _ in range(n):
            conn.request("POST", path, body, HEADERS)
            response = conn.getresponse()
            data = response.read()
            if response.status == 200 and not data.startswith(b"-"):
                ok += 1
            else:
                failed += 1
        conn.close()
        with lock:
            counts[0] += ok
            counts[1] += failed

    per_thread = requests_per_worker // threads
    pool = [threading.Thread(target=run, args=(per_thread,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts[0], counts[1]


def measure(url: str, endpoint: str, requests: int, processes: int, threads: int) -> dict:
    per_worker = requests // processes
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.starmap(_worker, [(url, endpoint, 50, 1)] * processes)  # warm up connections and imports
        start = time.perf_counter()
        results = pool.starmap(_worker, [(url, endpoint, per_worker, threads)] * processes)
        seconds = time.perf_counter() - start
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    return {
        "endpoint": endpoint,
        "requests": ok + failed,
        "failed": failed,
        "seconds": round(seconds, 3),
        "requests_per_s": round((ok + failed) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running sandbox (default: start one)")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = SandboxServer(record=False, frozen_clock=True, credit=10**9).start()
        url = server.base_url
    try:
        for endpoint in BODIES:
            print(json.dumps(measure(url, endpoint, args.requests, args.processes, args.threads)), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
