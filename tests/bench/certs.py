"""The bench's Certificates: create them fast, and wait for them to be Ready with one watch.

  certs.py create COUNT ISSUER RENEWING OWN   agent-0..COUNT-1 in namespace bench, the first
      RENEWING of them `duration: 5m`, the others 24h; 8 threads, one connection each
  certs.py opaque COUNT BYTES NAMESPACE OWN    COUNT unlabelled Opaque Secrets of BYTES
      random bytes each in NAMESPACE (4 threads)
  certs.py ready TARGET PID OWN               until TARGET Certificates are Ready (a paged
      LIST, then one WATCH); exits 1 if process PID (the operator) dies first

Reads KUBE_API and CERTSMITH_CERTS (the env's certificate folder) from the environment. Each
command appends the API requests it made itself to the file OWN ("VERB resource count"
lines), so that the report can take them out of the API server's counters. `ready` prints a
progress line every 10 s on stderr and, at the end, the Unix time when the target was reached.
"""
import base64, concurrent.futures, os, sys, threading, time

from kube_client import client, list_all, watch

certs, api = os.environ["CERTSMITH_CERTS"], os.environ["KUBE_API"]
path = "/apis/certsmith.dev/v1alpha1/namespaces/bench/certificates"


def own(file, *rows):
    with open(file, "a") as f:
        for verb, resource, n in rows:
            f.write(f"{verb} {resource} {n}\n")


def create(count, issuer, renewing, own_file):
    call = client(certs, "admin", api)
    def one(i):
        call("POST", path, {
            "apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": f"agent-{i}"},
            "spec": {"secretName": f"agent-{i}-tls", "issuerRef": {"name": issuer},
                     "dnsNames": [f"agent-{i}.bench.svc"],
                     "uris": [f"spiffe://cluster.local/ns/bench/sa/agent-{i}"],
                     "duration": "5m" if i < renewing else "24h"}})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(one, range(count)):
            pass
    own(own_file, ("POST", "certificates", count))


def opaque(count, size, namespace, own_file):
    call = client(certs, "admin", api)
    def one(i):
        data = base64.b64encode(os.urandom(size)).decode()
        call("POST", f"/api/v1/namespaces/{namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"unrelated-{i}"}, "data": {"blob": data}})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in pool.map(one, range(count)):
            pass
    own(own_file, ("POST", "secrets", count))


def is_ready(cert):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in cert.get("status", {}).get("conditions", []))


def alive(pid):
    """True while the process runs (a dead child of the shell stays a zombie until reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ready(target, pid, own_file):
    call = client(certs, "admin", api)
    ready_names, counts = set(), {"lists": 0, "watches": 0}
    done = threading.Event()
    def relist():
        items, rv, n = list_all(call, path)
        counts["lists"] += n
        ready_names.clear()
        ready_names.update(c["metadata"]["name"] for c in items if is_ready(c))
        return rv
    def follow():
        rv = relist()
        while len(ready_names) < target:
            counts["watches"] += 1
            for kind, obj in watch(certs, "admin", api, path, rv):
                if kind == "ERROR":  # 410 Gone: list again
                    rv = relist()
                    break
                rv = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                if kind != "DELETED" and is_ready(obj):
                    ready_names.add(name)
                    if len(ready_names) >= target:
                        break
                else:
                    ready_names.discard(name)
        done.set()
    threading.Thread(target=follow, daemon=True).start()
    last = time.time()
    while not done.wait(0.2):
        if not alive(pid):
            sys.exit(f"the operator (pid {pid}) died with {len(ready_names)} of {target} Ready")
        if time.time() - last >= 10:
            last = time.time()
            print(f"  {time.strftime('%H:%M:%S')} {len(ready_names)} of {target} Ready",
                  file=sys.stderr)
    print(f"{time.time():.3f}")
    own(own_file, ("LIST", "certificates", counts["lists"]),
        ("WATCH", "certificates", counts["watches"]))

def main(command, args):
    if command == "create":
        create(int(args[0]), args[1], int(args[2]), args[3])
    elif command == "opaque":
        opaque(int(args[0]), int(args[1]), args[2], args[3])
    elif command == "ready":
        ready(int(args[0]), int(args[1]), args[2])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2:])
    except KeyboardInterrupt:  # Ctrl-C: run.sh cleans up
        sys.exit(130)
