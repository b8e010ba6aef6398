"""`make bench ARGS=--renewals`: watch Certificates renew for a while and report how on time.

  renewals.py PID SECONDS OWN COUNT_FILE

One paged LIST, then one WATCH of the bench namespace's Certificates for SECONDS. A renewal is
a status whose `revision` went up; it is timed when the watch delivers it (the operator writes
the status right after the Secret, so this is the issuance time plus a few milliseconds).
For each renewal: lateness = that time minus the `status.renewalTime` that was due (from the
status before it), and whether the previous certificate's `notAfter` had already passed (an
expired certificate). Also samples the operator's (PID) VmRSS every second and its CPU time
(utime+stime) at both ends. Prints the report, writes the number of renewals to COUNT_FILE
and appends its own API requests to OWN. Reads KUBE_API and CERTSMITH_CERTS.
"""
import calendar, collections, os, sys, threading, time

from kube_client import client, list_all, watch

pid, seconds, own_file, count_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
certs, api = os.environ["CERTSMITH_CERTS"], os.environ["KUBE_API"]
path = "/apis/certsmith.dev/v1alpha1/namespaces/bench/certificates"
tick = os.sysconf("SC_CLK_TCK")


def ts(rfc3339):
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")) if rfc3339 else None


def cpu_ticks():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def status_kib(field):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


last = {}        # name -> (revision, renewalTime, notAfter) of the newest status seen
renewals = []    # (seen at, name, lateness s or None, expired before it was replaced)
requests = collections.Counter()
lock = threading.Lock()


def seen(cert, now):
    s = cert.get("status", {})
    name, rev = cert["metadata"]["name"], s.get("revision") or 0
    with lock:
        prev = last.get(name)
        if prev and rev > prev[0]:
            due, not_after = prev[1], prev[2]
            renewals.append((now, name, now - due if due else None,
                             bool(not_after and now > not_after)))
        if not prev or rev >= prev[0]:
            last[name] = (rev, ts(s.get("renewalTime")), ts(s.get("notAfter")))


def follow():
    call = client(certs, "admin", api)
    def relist():
        items, rv, n = list_all(call, path)
        requests["LIST"] += n
        now = time.time()
        for c in items:
            seen(c, now)
        return rv
    rv = relist()
    while True:
        requests["WATCH"] += 1
        for kind, obj in watch(certs, "admin", api, path, rv):
            if kind == "ERROR":
                rv = relist()
                break
            rv = obj["metadata"]["resourceVersion"]
            if kind in ("ADDED", "MODIFIED"):
                seen(obj, time.time())


start = time.time()
threading.Thread(target=follow, daemon=True).start()
cpu_start, rss = cpu_ticks(), []
try:
    while time.time() - start < seconds:
        rss.append(status_kib("VmRSS"))
        time.sleep(1)
except KeyboardInterrupt:  # Ctrl-C: run.sh cleans up
    sys.exit(130)
end = time.time()
cpu = (cpu_ticks() - cpu_start) / tick
hwm = status_kib("VmHWM")
with lock:
    done = [r for r in renewals if r[0] <= end]
    overdue_now = [n for n, (_, _, not_after) in last.items() if not_after and not_after < end]
with open(own_file, "a") as f:
    f.write(f"LIST certificates {requests['LIST']}\nWATCH certificates {requests['WATCH']}\n")
with open(count_file, "w") as f:
    f.write(f"{len(done)}\n")


def pct(values, p):
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


late = sorted(r[2] for r in done if r[2] is not None)
window = end - start
print(f"renewals                {len(done)} in {window:.0f} s ({len(done) / window:.2f}/s), "
      f"by {len({r[1] for r in done})} certificates")
print(f"renewal lateness        p50 {pct(late, 50):.2f} s, p99 {pct(late, 99):.2f} s, "
      f"max {late[-1] if late else float('nan'):.2f} s, min {late[0] if late else float('nan'):.2f} s "
      f"(seen by the watch minus the renewalTime due; renewalTime has 1 s resolution)")
print(f"ever expired            {sum(r[3] for r in done)} renewals came after the previous "
      f"notAfter; {len(overdue_now)} certificates expired at the end of the window")
print(f"operator CPU            {cpu:.2f} s in {window:.0f} s ({100 * cpu / window:.1f}% of one core"
      f"; {1000 * cpu / max(len(done), 1):.1f} ms per renewal)")
print(f"operator RSS            {sum(rss) / len(rss) / 1024:.1f} MiB mean, {min(rss) / 1024:.1f}-"
      f"{max(rss) / 1024:.1f} MiB (VmRSS each second); VmHWM {hwm / 1024:.1f} MiB")
per_second = collections.Counter(int(r[0] - start) for r in done)
counts = [per_second.get(s, 0) for s in range(int(window))]
peak = max(counts, default=0)
busiest_10 = max((sum(counts[s:s + 10]) for s in range(max(len(counts) - 9, 1))), default=0)
spread = collections.Counter(counts)
print(f"renewals per second     peak {peak}/s (1 s), {busiest_10 / 10:.1f}/s (busiest 10 s); seconds "
      f"with n renewals: " + ", ".join(f"{n}: {spread[n]}" for n in sorted(spread)))
bars = " ▁▂▃▄▅▆▇█"
print(f"  one character a second, one line a minute, █ = {peak}/s:")
for m in range(0, len(counts), 60):
    line = "".join(bars[(c * 8 + peak - 1) // peak if peak else 0] for c in counts[m:m + 60])
    print(f"  {m // 60:3d} min |{line}| {sum(counts[m:m + 60])}")
