#!/usr/bin/env python3
"""chaos.py: one back end's chaos run (started by run.sh), or --report of finished runs.

20 login loops run checkpassword as qmail-popup does (login\\0password\\0\\0 on a pipe on
descriptor 3, prog /bin/true) for --seconds, a mix of right and wrong passwords, while a
chaos thread stops, hangs (SIGSTOP), slows (SIGSTOP/SIGCONT bursts) and locks the
database on a schedule. Every login's exit code, expected answer, duration and log lines
go to OUT/logins.jsonl; the figures to OUT/summary.json and OUT/summary.md.

Accounts (domain chaos.test): good0-4 (right or wrong passwords), bad0-4 (only ever wrong
passwords, so their lockout counters only grow: the lost-failure check), other0-1 (changed
by mailaccounts in a loop during the SQLite run). Loops 0-9 each log in from their own
address 10.0.0.N, so every counter they touch has one writer at a time; loops 10-19 all
log in from 10.0.1.1 and share counters.
"""
import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

DOMAIN = "chaos.test"
LOOPS = 20
PRIVATE = 10  # loops 0..PRIVATE-1 have an address of their own
GOOD = [f"good{i}" for i in range(5)]
BAD = [f"bad{i}" for i in range(5)]
OTHER = [f"other{i}" for i in range(2)]
# checkpassword's login_timeout for every login (CHAOS_LOGIN_TIMEOUT, default 5 s): the
# whole login's deadline, over vpopdb::store::TIMEOUT (10 s) per connect, read, write or
# SQLite busy wait.
LOGIN_TIMEOUT = float(os.environ.get("CHAOS_LOGIN_TIMEOUT", "5"))
# A login is over the deadline when it takes longer than login_timeout plus this much
# (process start and reading fd 3 come before the alarm is set; the alarm has 1 s steps).
SLACK = 1.0
LOGIN_KILL = 60.0  # the driver's own bound on one login
MAX_LOGINS_PER_LOOP = 100000


def right_pw(user):
    return f"right-{user}-pw"


def wrong_pw(rng):
    return f"wrong-{rng.randrange(1 << 30)}"


class Run:
    def __init__(self, a):
        self.a = a
        self.t_start = None
        self.events = []  # (phase, t0, t1) relative seconds
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.writer_codes = Counter()
        os.makedirs(a.out, exist_ok=True)
        home = a.home
        self.qmail = os.path.join(home, "qmail")
        os.makedirs(os.path.join(self.qmail, "users"), exist_ok=True)
        conf = os.path.join(home, "checkpassword.conf")
        open(conf, "w").close()
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CHECKPASSWORD_CONFIG": conf,
            "CHECKPASSWORD_DB": a.db,
            "QMAIL": self.qmail,
            # Never lock: the counters must only count.
            "CHECKPASSWORD_LOCKOUT_FAILURES": "1000000000",
            "CHECKPASSWORD_LOGIN_TIMEOUT": f"{LOGIN_TIMEOUT:.0f}",
            "CHECKPASSWORD_LOCKOUT_IP_FAILURES": "1000000000",
            "CHECKPASSWORD_LOCKOUT_WINDOW": "86400",
            "CHECKPASSWORD_LOCKOUT_TIME": "60",
        }

    def now(self):
        return time.monotonic() - self.t_start

    # --- set-up ---
    def ma(self, args, stdin=None, check=True):
        p = subprocess.run([self.a.mailaccounts] + args, input=stdin, env=self.env,
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise SystemExit(f"mailaccounts {' '.join(args)}: {p.returncode} {p.stderr}")
        return p

    def ctl(self, *args, stdin=None, timeout=120):
        return subprocess.run([self.a.ctl] + list(args), input=stdin, capture_output=True,
                              text=True, timeout=timeout)

    def setup(self):
        if self.a.backend == "sqlite":
            self.ma(["init"])
        else:
            self.ma(["init"])
        self.ma(["add-domain", DOMAIN, "--uid", "nobody", "--gid", "nogroup",
                 "--dir", os.path.join(self.a.home, "domains", DOMAIN)])
        for u in GOOD + BAD + OTHER:
            self.ma(["add", f"{u}@{DOMAIN}", "--hash", "sha512"], stdin=right_pw(u) + "\n")

    # --- one login ---
    def login(self, user, pw, ip):
        r, w = os.pipe()
        os.write(w, f"{user}@{DOMAIN}\0{pw}\0\0".encode())
        os.close(w)
        er, ew = os.pipe()
        env = dict(self.env, TCPREMOTEIP=ip, TCPLOCALPORT="110", TCPLOCALIP="127.0.0.1")
        t0 = time.monotonic()
        try:
            pid = os.posix_spawn(self.a.checkpassword, [self.a.checkpassword, "/bin/true"], env,
                                 file_actions=[
                                     (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                     (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                                     (os.POSIX_SPAWN_DUP2, ew, 2),
                                     (os.POSIX_SPAWN_DUP2, r, 3),
                                 ])
        finally:
            os.close(r)
            os.close(ew)
        pfd = os.pidfd_open(pid)
        killed = False
        try:
            ready, _, _ = select.select([pfd], [], [], LOGIN_KILL)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                killed = True
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(pfd)
        t1 = time.monotonic()
        err = b""
        while True:
            b = os.read(er, 65536)
            if not b:
                break
            err += b
        os.close(er)
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
        else:
            code = -os.WTERMSIG(status)
        return t0 - self.t_start, t1 - t0, code, killed, err.decode(errors="replace")

    def loop(self, i):
        rng = random.Random(1000 + i)
        ip = f"10.0.0.{i + 1}" if i < PRIVATE else "10.0.1.1"
        end = self.a.seconds
        for n in range(MAX_LOGINS_PER_LOOP):
            if self.stop.is_set() or self.now() >= end:
                break
            if rng.random() < 0.5:
                user, cls = rng.choice(GOOD), "good"
                right = rng.random() < 0.7
            else:
                user, cls, right = rng.choice(BAD), "bad", False
            pw = right_pw(user) if right else wrong_pw(rng)
            t0, dur, code, killed, err = self.login(user, pw, ip)
            rec = {"loop": i, "ip": ip, "user": user, "cls": cls,
                   "expect": "right" if right else "wrong", "t0": round(t0, 4),
                   "dur": round(dur, 4), "code": code, "killed": killed,
                   "log": err.strip()[:400]}
            with self.lock:
                self.records.append(rec)

    # --- chaos ---
    def pids(self):
        out = self.ctl("pids").stdout.split()
        if not out:
            return []
        main = out[0]
        found = [int(main)]
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open(f"/proc/{e}/stat") as f:
                    s = f.read()
                if s[s.rindex(")") + 2:].split()[1] == main:
                    found.append(int(e))
            except (OSError, ValueError, IndexError):
                pass
        return found

    def signal_all(self, pids, sig):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def sleep_until(self, t):
        while not self.stop.is_set():
            d = t - self.now()
            if d <= 0:
                return True
            time.sleep(min(d, 0.2))
        return False

    def event(self, name, fn):
        t0 = self.now()
        note = ""
        try:
            note = fn() or ""
        finally:
            self.events.append({"phase": name, "t0": round(t0, 3), "t1": round(self.now(), 3),
                                "note": note})

    def hang(self, secs):
        def f():
            pids = self.pids()
            self.signal_all(pids, signal.SIGSTOP)
            try:
                time.sleep(secs)
            finally:
                self.signal_all(pids, signal.SIGCONT)
            return f"SIGSTOP {len(pids)} processes"
        return f

    def slow(self, secs):
        def f():
            end = time.monotonic() + secs
            n = 0
            while time.monotonic() < end:
                pids = self.pids()
                self.signal_all(pids, signal.SIGSTOP)
                try:
                    time.sleep(0.05)
                finally:
                    self.signal_all(pids, signal.SIGCONT)
                n += 1
                time.sleep(0.05)
            return f"{n} bursts of 50 ms stopped / 50 ms running"
        return f

    def down(self, secs):
        def f():
            self.ctl("stop")
            time.sleep(secs)
            p = self.ctl("start")
            return f"stopped {secs} s, restart rc {p.returncode}"
        return f

    def tablelock(self, secs):
        def f():
            p = self.ctl("lock", str(secs), timeout=secs + 60)
            return f"lock rc {p.returncode} {p.stderr.strip()[:200]}"
        return f

    def schedule(self):
        if self.a.schedule == "long":
            # One outage far longer than the timeout: what a login's duration is bounded by.
            if self.a.backend == "sqlite":
                return [(6, "hold45", self.tablelock(45))]
            return [(6, "hang45", self.hang(45))]
        if self.a.backend == "sqlite":
            return [(6, "hold4", self.tablelock(4)), (6, "hold12", self.tablelock(12)),
                    (6, "hold4", self.tablelock(4))]
        lock = "lock5"
        return [(6, "down5", self.down(5)), (4, "hang4", self.hang(4)),
                (4, "hang12", self.hang(12)), (4, "slow6", self.slow(6)),
                (4, lock, self.tablelock(5))]

    def chaos(self):
        t = 0.0
        try:
            for gap, name, fn in self.schedule():
                t = max(t, self.now()) + gap
                if t >= self.a.seconds or not self.sleep_until(t):
                    break
                self.event(name, fn)
        finally:
            if self.a.backend != "sqlite":
                self.signal_all(self.pids(), signal.SIGCONT)

    def writers(self):
        # SQLite: mailaccounts changing other accounts all the time (passwd, flags).
        rng = random.Random(7)
        for n in range(100000):
            if self.stop.is_set() or self.now() >= self.a.seconds:
                break
            u = f"{rng.choice(OTHER)}@{DOMAIN}"
            if n % 2:
                p = self.ma(["passwd", u, "--hash", "sha512"], stdin=f"pw{n}\n", check=False)
                what = "passwd"
            else:
                p = self.ma(["flags", u, "+NO_POP" if n % 4 else "-NO_POP"], check=False)
                what = "flags"
            self.writer_codes[f"{what}:{p.returncode}"] += 1
            if p.returncode != 0 and len(self.writer_errors) < 5:
                self.writer_errors.append(p.stderr.strip()[:300])

    def run(self):
        self.setup()
        self.writer_errors = []
        self.t_start = time.monotonic()
        threads = [threading.Thread(target=self.loop, args=(i,)) for i in range(LOOPS)]
        threads.append(threading.Thread(target=self.chaos))
        if self.a.backend == "sqlite":
            threads.append(threading.Thread(target=self.writers))
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join()
            raise
        finally:
            if self.a.backend != "sqlite":
                self.signal_all(self.pids(), signal.SIGCONT)
                self.ctl("start")
        self.analyse()

    # --- figures ---
    def counters(self):
        p = self.ctl("sql", stdin="SELECT lockkey, failures, first_ts, locked_until FROM lockout;\n")
        if p.returncode != 0:
            raise SystemExit(f"reading lockout: {p.stderr}")
        out = {}
        for line in p.stdout.splitlines():
            f = line.split("\t")
            if len(f) >= 4:
                out[f[0]] = {"failures": int(f[1]), "locked_until": int(f[3])}
        return out

    def phase_of(self, r):
        a, b = r["t0"], r["t0"] + r["dur"]
        for e in self.events:
            if a <= e["t1"] and b >= e["t0"]:
                return e["phase"]
        return "baseline"

    def analyse(self):
        recs = sorted(self.records, key=lambda r: r["t0"])
        deadline = LOGIN_TIMEOUT + SLACK
        rows = defaultdict(lambda: Counter())
        maxdur = defaultdict(float)
        violations = []
        for r in recs:
            ph = self.phase_of(r)
            r["phase"] = ph
            c = rows[ph]
            c["logins"] += 1
            code = r["code"]
            c[str(code) if code in (0, 1, 111) else "other"] += 1
            c[f"{r['expect']}:{code}"] += 1
            maxdur[ph] = max(maxdur[ph], r["dur"])
            why = []
            if r["expect"] == "right" and code == 1:
                why.append("right password answered 1")
            if r["expect"] == "wrong" and code == 0:
                why.append("wrong password answered 0")
            if code not in (0, 1, 111):
                why.append(f"exit {code}" + (" (killed by the driver)" if r["killed"] else ""))
            if r["dur"] > deadline:
                why.append(f"took {r['dur']:.2f} s > {deadline:.0f} s")
            if why:
                c["violations"] += 1
                violations.append(dict(r, why="; ".join(why)))
        # Lost failures: counters that only a wrong-only account's failures or an address's
        # failures move, against the 1-answers that should have moved them.
        # A failure whose write failed is logged ("unable to record failure") and still
        # answered 1: counted apart as logged, so lost - logged is what went silently.
        ones = Counter()
        logged = Counter()
        for r in recs:
            if r["code"] == 1:
                keys = [f"ip:{r['ip']}"]
                if r["cls"] == "bad":
                    keys.append(f"acct:{r['user']}@{DOMAIN}:{r['ip']}")
                for k in keys:
                    ones[k] += 1
                    if "unable to record failure" in r["log"]:
                        logged[k] += 1
        stored = self.counters()
        check = {}
        for scope, pred in (("private", lambda k: not k.endswith("10.0.1.1")),
                            ("shared", lambda k: k.endswith("10.0.1.1"))):
            for kind in ("acct", "ip"):
                keys = [k for k in ones if k.startswith(kind + ":") and pred(k)]
                lost = sum(max(0, ones[k] - stored.get(k, {}).get("failures", 0)) for k in keys)
                extra = sum(max(0, stored.get(k, {}).get("failures", 0) - ones[k]) for k in keys)
                locked = sum(1 for k in keys if stored.get(k, {}).get("locked_until", 0))
                check[f"{scope} {kind}"] = {"keys": len(keys), "ones": sum(ones[k] for k in keys),
                                            "stored": sum(stored.get(k, {}).get("failures", 0)
                                                          for k in keys),
                                            "lost": lost, "extra": extra, "locked": locked,
                                            "logged": sum(logged[k] for k in keys)}
        phases = ["baseline"] + [e["phase"] for e in self.events]
        phases = list(dict.fromkeys(p for p in phases if p in rows))
        summary = {
            "backend": self.a.backend, "schedule": self.a.schedule, "seconds": self.a.seconds, "loops": LOOPS,
            "deadline_s": deadline, "events": self.events,
            "phases": {p: dict(rows[p], max_dur=round(maxdur[p], 3)) for p in phases},
            "total": len(recs), "max_dur": round(max((r["dur"] for r in recs), default=0), 3),
            "violations": len(violations), "counters": check,
            "writers": dict(self.writer_codes), "writer_errors": self.writer_errors,
        }
        with open(os.path.join(self.a.out, "logins.jsonl"), "w") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
        with open(os.path.join(self.a.out, "violations.jsonl"), "w") as f:
            for v in violations:
                f.write(json.dumps(v) + "\n")
        with open(os.path.join(self.a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(f"{self.a.backend}: {len(recs)} logins, {len(violations)} violations", flush=True)


def render(s, violations):
    b = s["backend"] + ("" if s.get("schedule", "standard") == "standard" else f" ({s['schedule']} schedule)")
    out = [f"### {b}: {s['total']} logins in {s['seconds']} s, {s['loops']} loops, "
           f"max {s['max_dur']:.2f} s, {s['violations']} violations", ""]
    for e in s["events"]:
        out.append(f"- {e['phase']} at {e['t0']:.1f}-{e['t1']:.1f} s: {e['note']}")
    out += ["", "| phase | logins | 0 | 1 | 111 | other | right→0 | right→111 | right→1 | "
            "wrong→1 | wrong→111 | wrong→0 | > deadline | max s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    vs_by_phase = Counter()
    slow_by_phase = Counter()
    for v in violations:
        if "took" in v["why"]:
            slow_by_phase[v["phase"]] += 1
    for p, c in s["phases"].items():
        g = lambda k: c.get(k, 0)
        out.append(f"| {p} | {g('logins')} | {g('0')} | {g('1')} | {g('111')} | {g('other')} | "
                   f"{g('right:0')} | {g('right:111')} | {g('right:1')} | {g('wrong:1')} | "
                   f"{g('wrong:111')} | {g('wrong:0')} | {slow_by_phase[p]} | {c['max_dur']:.2f} |")
    out += ["", "| lockout counters | keys | 1-answers | stored | lost | of them logged | "
            "extra | locked |", "|---|---|---|---|---|---|---|---|"]
    for k, c in s["counters"].items():
        out.append(f"| {k} | {c['keys']} | {c['ones']} | {c['stored']} | {c['lost']} | "
                   f"{c.get('logged', 0)} | {c['extra']} | {c['locked']} |")
    if s.get("writers"):
        out += ["", f"mailaccounts writers: {s['writers']}"]
        for e in s.get("writer_errors", []):
            out.append(f"  writer error: {e}")
    if violations:
        out += ["", "Violations (first 10):"]
        for v in violations[:10]:
            out.append(f"- {v['phase']} t={v['t0']:.2f} {v['user']} {v['expect']} from {v['ip']}: "
                       f"exit {v['code']}, {v['dur']:.2f} s: {v['why']}; log: {v['log']!r}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend")
    ap.add_argument("--db")
    ap.add_argument("--ctl")
    ap.add_argument("--home")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--out")
    ap.add_argument("--schedule", default="standard", choices=["standard", "long"])
    ap.add_argument("--report", metavar="OUTDIR")
    ap.add_argument("backends", nargs="*")
    a = ap.parse_args()
    if a.report:
        for b in a.backends:
            p = os.path.join(a.report, b)
            try:
                s = json.load(open(os.path.join(p, "summary.json")))
            except OSError:
                print(f"### {b}: no figures\n")
                continue
            v = [json.loads(l) for l in open(os.path.join(p, "violations.jsonl"))]
            print(render(s, v))
        return
    a.checkpassword = os.environ["CHECKPASSWORD"]
    a.mailaccounts = os.environ["MAILACCOUNTS"]
    Run(a).run()


if __name__ == "__main__":
    main()
