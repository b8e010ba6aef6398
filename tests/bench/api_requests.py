"""The API server's own request counters (apiserver_request_total), for the bench.

  api_requests.py snapshot < metrics        "VERB resource[/subresource] count" lines
  api_requests.py writes BEFORE AFTER [OWN]  operator writes between two snapshots
  api_requests.py report BEFORE AFTER COUNT [OWN [UNIT]]
      reads (GET, LIST) and writes per UNIT (default: cert; COUNT of them), then every verb
      and resource per UNIT

The counters have no client label, so what is not the operator's is taken out by name:
the bench's own requests (OWN: lines the bench's helpers append, "VERB resource count"),
`leases` (the control plane's own heartbeats; the bench runs the operator without leader
election) and requests for no resource (discovery, /metrics scrapes, health checks). The
little kube-controller-manager of the test environment (namespace, service account and
garbage-collector controllers) is idle unless namespaces or owners change. A WATCH is counted
when it ends, so watches are listed but are not in the headline figures. WATCH-EVENTS rows
are the events the API server sent to all watchers (apiserver_watch_events_total, the bench's
own watch of Certificates included): the fan-out each write costs the API server.
"""
import collections, re, sys

READS = {"GET", "LIST"}
WRITES = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
NOT_OPERATOR = {"-", "leases"}


def snapshot(stream):
    counts = collections.Counter()
    for line in stream:
        if line.startswith("apiserver_watch_events_total{"):
            # Events the API server sent to watchers: the fan-out of every write.
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            what = labels.get("resource") or labels.get("kind") or "-"
            counts[("WATCH-EVENTS", what)] += int(float(line.rsplit(" ", 1)[1]))
            continue
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        resource = labels.get("resource", "")
        if resource and labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[(labels.get("verb", ""), resource or "-")] += int(float(line.rsplit(" ", 1)[1]))
    for (verb, resource), n in sorted(counts.items()):
        print(verb, resource, n)


def load(path):
    out = collections.Counter()
    for line in open(path):
        verb, resource, n = line.split()
        out[(verb, resource)] += int(n)
    return out


def operator_delta(before, after, own=None):
    """Requests between two snapshots, less the bench's own and those that are not the operator's."""
    before, after = load(before), load(after)
    mine = load(own) if own else collections.Counter()
    delta = {}
    for key, n in after.items():
        d = n - before.get(key, 0) - mine.get(key, 0)
        if d > 0 and key[1].split("/")[0] not in NOT_OPERATOR:
            delta[key] = d
    return delta


def writes(delta):
    return sum(n for (verb, _), n in delta.items() if verb in WRITES)


def report(delta, count, unit="cert"):
    reads = sum(n for (verb, _), n in delta.items() if verb in READS)
    rows = sorted(delta.items(), key=lambda kv: (-kv[1], kv[0]))
    print(f"{'API reads per ' + unit:<23} {reads / count:.2f} (GET and LIST: {reads})")
    print(f"{'API writes per ' + unit:<23} {writes(delta) / count:.2f} ({writes(delta)} writes)")
    print(f"{'API requests per ' + unit:<23} by verb and resource (not the bench's own, leases or non-resource):")
    for (verb, resource), n in rows:
        if verb == "WATCH-EVENTS" and n < max(0.01 * count, 10):
            continue  # the control plane's own watchers, resynced now and then
        print(f"    {verb:<7} {resource:<34} " + (f"{n / count:7.2f}  ({n})" if count > 1 else f"{n:7d}"))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "snapshot":
        snapshot(sys.stdin)
    elif command == "writes":
        print(writes(operator_delta(args[0], args[1], args[2] if len(args) > 2 else None)))
    elif command == "report":
        report(operator_delta(args[0], args[1], args[3] if len(args) > 3 else None), int(args[2]),
               *args[4:5])
    else:
        sys.exit(f"unknown command {command}")
