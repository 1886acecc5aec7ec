"""ctrlc_storm_child.py PATH SECONDS SEED OUT: the Ctrl-C storm (test_commit_attack.py).

WORKERS threads and the main thread put durable keys into the store at PATH while a
thread sends this process SIGINT every 0.2-3 ms for SECONDS s (so that the main
thread's KeyboardInterrupt lands anywhere in its puts: queued, leading, holding the
sync duty, syncing). Then the storm stops and every thread must end within TIMEOUT s
(never hang); each writes once more after it, which must succeed; the keys whose put
returned (acknowledged) go to OUT, one per line, and the store is closed. Prints
``DONE interrupts=N acked=N abandoned=N`` or ``HANG`` (with every thread's stack on
stderr), ``AFTER-FAILED ...`` if a write after the storm failed.
"""
from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
import threading
import time
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pagestore  # noqa: E402
from pagestore.errors import PageStoreError  # noqa: E402

WORKERS = 8
TIMEOUT = 20.0


def main() -> int:
    path, seconds, seed, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    db = pagestore.open(path)
    stop = threading.Event()
    storm_over = threading.Event()
    acked: List[List[bytes]] = [[] for _ in range(WORKERS + 1)]
    abandoned = [0] * (WORKERS + 1)
    other: List[str] = []

    def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            key = b"w%d-%06d" % (w, i)
            i += 1
            try:
                db[key] = key
            except PageStoreError as exc:
                if "abandoned" in str(exc):
                    abandoned[w] += 1
                    continue
                other.append(f"worker {w}: {exc!r}")
                return
            acked[w].append(key)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(WORKERS)]

    def storm() -> None:
        go.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(rng.uniform(0.0002, 0.003))
            os.kill(os.getpid(), signal.SIGINT)
        storm_over.set()

    for t in threads:
        t.start()
    stormer = threading.Thread(target=storm, daemon=True)
    interrupts = 0
    i = 0
    go = threading.Event()
    stormer.start()
    # The main thread writes too: only it gets KeyboardInterrupt. An interrupt may land
    # anywhere here, also in an except clause: the outer loop catches that one.
    while not storm_over.is_set():
        try:
            go.set()  # the storm begins (the first SIGINT lands in this loop)
            while not storm_over.is_set():
                key = b"m-%06d" % i
                i += 1
                try:
                    db[key] = key
                    acked[WORKERS].append(key)
                except KeyboardInterrupt:
                    interrupts += 1
                except PageStoreError as exc:
                    if "abandoned" in str(exc):
                        abandoned[WORKERS] += 1
                    else:
                        other.append(f"main: {exc!r}")
                        storm_over.wait()
        except KeyboardInterrupt:
            interrupts += 1
    # A SIGINT sent just before the storm ended may still be pending: let it land here.
    for _ in range(3):
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            interrupts += 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop.set()
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        q = db._commits
        print("HANG", f"busy={q._busy} queue={[(r.lead, r.done) for r in q._queue]} syncing={q._syncing}",
              f"awaiting={len(q._awaiting)} writer_owner={q._writer._owner} holder={q._writer.holder!r}",
              f"locked={q._writer._lock.locked()}", flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)
    # The store still takes writes, from several threads at once, within the timeout.
    after_errors: List[str] = []

    def after(w: int) -> None:
        try:
            db[b"after-%d" % w] = b"1"
            acked[w].append(b"after-%d" % w)
        except Exception as exc:  # noqa: BLE001 - reported
            after_errors.append(repr(exc))

    late = [threading.Thread(target=after, args=(w,), daemon=True) for w in range(WORKERS)]
    for t in late:
        t.start()
    for t in late:
        t.join(TIMEOUT)
    if any(t.is_alive() for t in late):
        print("HANG after", flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)
    with open(out, "wb") as f:
        for keys in acked:
            for k in keys:
                f.write(k + b"\n")
    if other or after_errors:
        print("AFTER-FAILED", other[:3], after_errors[:3], flush=True)
    db.close()
    print(f"DONE interrupts={interrupts} acked={sum(map(len, acked))} abandoned={sum(abandoned)}", flush=True)
    return 0


if __name__ == "__main__":
    faulthandler.dump_traceback_later(TIMEOUT * 4, exit=True)
    sys.exit(main())
