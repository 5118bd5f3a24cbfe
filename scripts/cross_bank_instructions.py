#!/usr/bin/env python3
# Instructions Redis spends per transfer (callgrind on a private redis-server, so the machine's
# load does not matter): a same-bank batch of transfer.lua against the debit, credit and
# settlement steps of cross_bank.lua, batches of 1,024 transfers over 13 banks of 1,000 accounts,
# with outboxes and inboxes of a busy run's size. Needs valgrind and `pip install redis`.
#   python3 scripts/cross_bank_instructions.py src/store/lua/cross_bank.lua src/store/lua/transfer.lua 5
# With a fourth argument K, one transfer per call instead: a same-bank transfer per call of
# transfer.lua against a debit per call, then the credits and settlements K per bank and call
# (what the broker's courier does; it gathers about 28 per call with 20 workers), and a transfer
# between two banks per call of transfer.lua on one server (what the single server runs unbatched).
#   python3 scripts/cross_bank_instructions.py src/store/lua/cross_bank.lua src/store/lua/transfer.lua 5 20
import random, collections
import redis
P = "p"
acc = lambda b, ib: f"{P}:{{{b}}}:account:{ib}"
def run_single(r, XB, TR, ROUNDS, BATCH, zero, dump):
    xb = r.script_load(open(XB).read()); tr = r.script_load(open(TR).read())
    banks = [f"Bank{b}" for b in range(13)]
    accts = [(banks[i % 13], f"DE{i:020d}") for i in range(1000)]
    pipe = r.pipeline(transaction=False)
    for b, ib in accts: pipe.set(acc(b, ib), 10**9); pipe.set(acc("Solo", ib), 10**9)
    for b in banks:
        pipe.hset(f"{P}:{{{b}}}:outbox", mapping={f"x-{i}": "Bank1,DE0,DE1,5" for i in range(1500)})
        pipe.hset(f"{P}:{{{b}}}:inbox", mapping={f"Bank1|r0-w1-{i}": "C" for i in range(20000)})
    pipe.execute()
    rng = random.Random(7)
    ibs = [ib for _, ib in accts]
    N = ROUNDS * 200
    zero()
    bank = "Solo"
    for k in range(N):
        f, t = rng.sample(ibs, 2)
        keys = [f"{P}:{{{bank}}}:events", f"{P}:{{{bank}}}:producer:r1-w1", f"{P}:{{{bank}}}:balance", f"{P}:{{{bank}}}:interbank",
                f"{P}:{{{bank}}}:balance", f"{P}:{{{bank}}}:interbank", acc(bank, f), acc(bank, t)]
        argv = ["r1-w1", str(1 + k), bank, bank, f, t, str(rng.randint(1, 10))]
        assert r.evalsha(tr, len(keys), *keys, *argv) == b"C"
    dump("same")
    zero()
    for k in range(N):
        while True:
            (fb, f), (tb, t) = rng.sample(accts, 2)
            if fb != tb: break
        keys = [f"{P}:events", f"{P}:producer:r2-w1", f"{P}:{{{fb}}}:balance", f"{P}:{{{fb}}}:interbank",
                f"{P}:{{{tb}}}:balance", f"{P}:{{{tb}}}:interbank", acc(fb, f), acc(tb, t)]
        argv = ["r2-w1", str(1 + k), fb, tb, f, t, str(rng.randint(1, 10))]
        assert r.evalsha(tr, len(keys), *keys, *argv) == b"C"
    dump("between")
    seq = collections.defaultdict(lambda: 1)
    debited = []
    for _ in range(N):
        while True:
            (fb, f), (tb, t) = rng.sample(accts, 2)
            if fb != tb: break
        g = (fb, f, tb, t, str(rng.randint(1, 10)))
        a = fb; first = seq[a]
        keys = [f"{P}:{{{a}}}:events", f"{P}:{{{a}}}:producer:r1-w1", f"{P}:{{{a}}}:balance", f"{P}:{{{a}}}:interbank",
                f"{P}:{{{a}}}:outbox", f"{P}:{{{a}}}:inflight", acc(a, f)]
        argv = ["debit", "r1-w1", str(first), a, "1", tb, f, t, g[4]]
        assert r.evalsha(xb, len(keys), *keys, *argv) == b"D"
        debited.append((g, f"r1-w1-{first}"))
        seq[a] += 1
    dump("debit")
    answered = []
    for start in range(0, len(debited), K * 13):
        chunk = debited[start:start + K * 13]
        by_dst = collections.defaultdict(list)
        for g, id_ in chunk: by_dst[g[2]].append((g, id_))
        for b, group in by_dst.items():
            keys = [f"{P}:{{{b}}}:events", f"{P}:{{{b}}}:inbox", f"{P}:{{{b}}}:balance", f"{P}:{{{b}}}:interbank"] + [acc(b, g[3]) for g, _ in group]
            argv = ["credit", b, "0", str(len(group))]
            for g, id_ in group: argv += [g[0], id_, g[1], g[3], g[4]]
            letters = r.evalsha(xb, len(keys), *keys, *argv).decode()
            answered += [(g, id_, l) for (g, id_), l in zip(group, letters)]
    dump("credit")
    for start in range(0, len(answered), K * 13):
        chunk = answered[start:start + K * 13]
        by_src = collections.defaultdict(list)
        for x in chunk: by_src[x[0][0]].append(x)
        for a, group in by_src.items():
            keys = [f"{P}:{{{a}}}:events", f"{P}:{{{a}}}:outbox", f"{P}:{{{a}}}:inflight", f"{P}:{{{a}}}:balance", f"{P}:{{{a}}}:interbank"] + [acc(a, g[1]) for g, _, l in group if l != "C"]
            argv = ["settle", a, str(len(group)), "".join(l for _, _, l in group)] + [id_ for _, id_, _ in group]
            assert set(r.evalsha(xb, len(keys), *keys, *argv).decode()) == {"S"}
    dump("settle")
    return {"same": N, "cross": N}


def run(r, XB, TR, ROUNDS, BATCH, zero, dump):
    xb = r.script_load(open(XB).read()); tr = r.script_load(open(TR).read())
    banks = [f"Bank{b}" for b in range(13)]
    accts = [(banks[i % 13], f"DE{i:020d}") for i in range(1000)]
    pipe = r.pipeline(transaction=False)
    for b, ib in accts: pipe.set(acc(b, ib), 10**9); pipe.set(acc("Solo", ib), 10**9)
    for b in banks:
        pipe.hset(f"{P}:{{{b}}}:outbox", mapping={f"x-{i}": "Bank1,DE0,DE1,5" for i in range(1500)})
        pipe.hset(f"{P}:{{{b}}}:inbox", mapping={f"Bank1|r0-w1-{i}": "C" for i in range(20000)})
    pipe.execute()
    rng = random.Random(7)
    ibs = [ib for _, ib in accts]
    zero()
    for k in range(ROUNDS):
        bank = "Solo"; n = BATCH
        keys = [f"{P}:{{{bank}}}:events", f"{P}:{{{bank}}}:producer:r1-w1", f"{P}:{{{bank}}}:balance", f"{P}:{{{bank}}}:interbank"]
        argv = ["r1-w1", str(1 + k * n), "1", bank, str(n)]
        for _ in range(n):
            f, t = rng.sample(ibs, 2)
            keys += [acc(bank, f), acc(bank, t)]
            argv += ["1", "1", f, t, str(rng.randint(1, 10))]
        r.evalsha(tr, len(keys), *keys, *argv)
    dump("same")
    picks = []
    for _ in range(ROUNDS):
        batch = []
        for _ in range(BATCH):
            while True:
                (fb, f), (tb, t) = rng.sample(accts, 2)
                if fb != tb: break
            batch.append((fb, f, tb, t, str(rng.randint(1, 10))))
        picks.append(batch)
    seq = collections.defaultdict(lambda: 1)
    zero()
    debited_all = []
    for batch in picks:
        by_src = collections.defaultdict(list)
        for p in batch: by_src[p[0]].append(p)
        debited = []
        for a, group in by_src.items():
            first = seq[a]
            keys = [f"{P}:{{{a}}}:events", f"{P}:{{{a}}}:producer:r1-w1", f"{P}:{{{a}}}:balance", f"{P}:{{{a}}}:interbank",
                    f"{P}:{{{a}}}:outbox", f"{P}:{{{a}}}:inflight"] + [acc(a, g[1]) for g in group]
            argv = ["debit", "r1-w1", str(first), a, str(len(group))]
            for g in group: argv += [g[2], g[1], g[3], g[4]]
            letters = r.evalsha(xb, len(keys), *keys, *argv).decode()
            for k, (g, l) in enumerate(zip(group, letters)):
                assert l == "D"
                debited.append((g, f"r1-w1-{first + k}"))
            seq[a] += len(group)
        debited_all.append(debited)
    dump("debit")
    answered_all = []
    for debited in debited_all:
        by_dst = collections.defaultdict(list)
        for g, id_ in debited: by_dst[g[2]].append((g, id_))
        answered = []
        for b, group in by_dst.items():
            keys = [f"{P}:{{{b}}}:events", f"{P}:{{{b}}}:inbox", f"{P}:{{{b}}}:balance", f"{P}:{{{b}}}:interbank"] + [acc(b, g[3]) for g, _ in group]
            argv = ["credit", b, "0", str(len(group))]
            for g, id_ in group: argv += [g[0], id_, g[1], g[3], g[4]]
            letters = r.evalsha(xb, len(keys), *keys, *argv).decode()
            assert set(letters) == {"C"}
            answered += [(g, id_, l) for (g, id_), l in zip(group, letters)]
        answered_all.append(answered)
    dump("credit")
    for answered in answered_all:
        by_src = collections.defaultdict(list)
        for x in answered: by_src[x[0][0]].append(x)
        for a, group in by_src.items():
            keys = [f"{P}:{{{a}}}:events", f"{P}:{{{a}}}:outbox", f"{P}:{{{a}}}:inflight", f"{P}:{{{a}}}:balance", f"{P}:{{{a}}}:interbank"] + [acc(a, g[1]) for g, _, l in group if l != "C"]
            argv = ["settle", a, str(len(group)), "".join(l for _, _, l in group)] + [id_ for _, id_, _ in group]
            letters = r.evalsha(xb, len(keys), *keys, *argv).decode()
            assert set(letters) == {"S"}, letters
    dump("settle")
    assert r.get(f"{P}:{{Bank0}}:inflight") in (b"0", None), r.get(f"{P}:{{Bank0}}:inflight")
    return {"same": ROUNDS * BATCH, "cross": ROUNDS * BATCH}

import subprocess, sys, time, os, glob, re, tempfile
XB = sys.argv[1]; TR = sys.argv[2]; ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
K = int(sys.argv[4]) if len(sys.argv) > 4 else None
BATCH = 1024
port = 18000 + os.getpid() % 1000
d = tempfile.mkdtemp()
srv = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.%n", "redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = redis.Redis(port=port)
for _ in range(100):
    try: r.ping(); break
    except Exception: time.sleep(0.2)
def dump(name):
    subprocess.run(["callgrind_control", "-d", name, str(srv.pid)], stdout=subprocess.DEVNULL)
def zero():
    subprocess.run(["callgrind_control", "-z", str(srv.pid)], stdout=subprocess.DEVNULL)
try:
    res = (run_single if K else run)(r, XB, TR, ROUNDS, BATCH, zero, dump)
finally:
    srv.terminate(); srv.wait()
def total(f):
    for line in open(f):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
out = {}
for f in sorted(glob.glob(f"{d}/cg.*")):
    m = open(f).read(4000)
    trig = re.search(r"^desc: Trigger: dump (\S+)", m, re.M)
    if trig: out[trig.group(1)] = total(f)
same = out["same"] / res["same"]
parts = {k: out[k] / res["cross"] for k in ("debit", "credit", "settle") if k in out}
cross = sum(parts.values())
if "between" in out:
    print("one server, a transfer between banks per call: %.0f; the cluster's three steps over it: %.2fx"
          % (out["between"] / res["cross"], sum(parts.values()) / (out["between"] / res["cross"])))
print("instructions/transfer: same %.0f  " % same + "  ".join(f"{k} {v:.0f}" for k, v in parts.items()) + f"  cross {cross:.0f}  ratio {cross/same:.2f}")
