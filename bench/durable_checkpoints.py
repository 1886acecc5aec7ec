"""durable_checkpoints: the checkpoints that land in compare.py's durable phase (500 one-put commits), ours and sqlite3's (issue 23).

    python bench/durable_checkpoints.py [records, default 50000]

Runs ``pagestore.bench.run`` for pagestore and sqlite3 (compare.py's workload: inserts,
reads, churn, then the durable phase) with probes: each put's wall time; for pagestore,
each checkpoint run during the phase (pages copied, time, fdatasyncs of the process
during it: the log's owed sync, the data file's, the new log header's); for sqlite3,
each restart of its WAL seen after a put (its salt changes at the first write after a
full checkpoint) with the distinct pages the old generation held (what that checkpoint
copied). Measured 2026-12-07 (load 8-10, disk shared): at 20k records both checkpoint
once in the phase (ours at put 455: 770 pages, 34 ms, 3 fdatasyncs; sqlite3 at about put
467: 696 pages, 32-40 ms); at 50k, sqlite3 once (about put 416, 763 pages, 39 ms), ours
not (its log at 5.5 of 5.96 MB when the phase ended). Over 2,000 one-put commits on a 20k
store (strace): sqlite3 2,008 WAL + 4 database fdatasyncs (4 checkpoints, 3 syncs more
each), ours 2,001 log + 1 data file (1 checkpoint, 2 more).
"""
import os, struct, sys, time, statistics

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pagestore import bench, checkpointer, fileio
N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
state = {"phase": False}
ours = []  # (pages, seconds, syncs)
syncs = [0]
real_fdatasync = os.fdatasync
def counting_fdatasync(fd):
    syncs[0] += 1
    return real_fdatasync(fd)
os.fdatasync = counting_fdatasync
orig_ck = checkpointer.Checkpointer._checkpoint
orig_bf = checkpointer.Checkpointer._backfill
cur = {}
def bf(self, limit, frames):
    pg = {self.pager.wal.frame_pgnos[k] for k in range(self.backfilled, limit)}
    cur["pages"] = len(pg - {0})
    return orig_bf(self, limit, frames)
def ck(self, wait):
    if not state["phase"]:
        return orig_ck(self, wait)
    s0, t0 = syncs[0], time.perf_counter()
    cur.clear()
    w = self.pager.wal
    cur["info"] = dict(put=len(lat["pagestore"]), size=w.size(), thr=self.threshold(), bf=self.backfilled, frames=w.committed_frames, next_try=self.next_try, readers=self.pager.readers)
    try:
        return orig_ck(self, wait)
    finally:
        ours.append((cur["info"]["put"], cur.get("pages"), time.perf_counter() - t0, syncs[0] - s0))
checkpointer.Checkpointer._checkpoint = ck
checkpointer.Checkpointer._backfill = bf

lat = {"pagestore": [], "sqlite": []}
for cls, name in ((bench.PagestoreAdapter, "pagestore"), (bench.SqliteAdapter, "sqlite")):
    orig = cls.put_one_durable
    def put(self, k, v, orig=orig, name=name):
        state["phase"] = True
        t = time.perf_counter()
        orig(self, k, v)
        lat[name].append(time.perf_counter() - t)
        if len(lat[name]) == bench.DURABLE_PUTS:
            state["phase"] = False  # the close's checkpoint is not the phase's
        if name == "sqlite":
            sq_after_put(self)
    cls.put_one_durable = put

sq = {"salt": None, "off": 32, "pages": set(), "events": [], "i": 0}
def sq_after_put(self):
    p = os.path.join(self.dirpath, "bench.sqlite-wal")
    sq["i"] += 1
    with open(p, "rb") as f:
        hdr = f.read(32)
        salt = hdr[16:24]
        ps = struct.unpack(">I", hdr[8:12])[0]
        if salt != sq["salt"]:
            if sq["salt"] is not None:
                sq["events"].append((sq["i"], len(sq["pages"])))  # restart seen at put i: checkpoint at or before put i-1
            sq["salt"], sq["off"], sq["pages"] = salt, 32, set()
        while True:
            f.seek(sq["off"])
            fh = f.read(24)
            if len(fh) < 24 or fh[8:16] != salt:
                break
            sq["pages"].add(struct.unpack(">I", fh[:4])[0])
            sq["off"] += 24 + ps
    # frames in the log now
    sq["frames"] = (sq["off"] - 32) // (24 + ps)

res = bench.run(engines=["pagestore", "sqlite"], n=N)
for name in ("pagestore", "sqlite"):
    L = lat[name]
    med = statistics.median(L)
    slow = sorted(range(len(L)), key=lambda i: -L[i])[:3]
    print(f"{name}: durable phase {sum(L)*1e3:.1f} ms for {len(L)} puts, median {med*1e6:.0f} us; "
          f"slowest puts: " + ", ".join(f"#{i} {L[i]*1e3:.1f} ms" for i in slow))
print("pagestore checkpoints in the phase (at put #, pages copied, ms, fdatasyncs):", [(i, p, round(s*1e3, 1), n) for i, p, s, n in ours])
print("sqlite WAL restarts in the phase (at put #, distinct pages in the old generation):", sq["events"], "frames now", sq.get("frames"))
print("rates:", {e: round(r["phases"]["durable_puts"]["rate"]) for e, r in res["engines"].items() if "phases" in r})
