"""The bench scripts' JSON client for the local API server, with client certificates."""
import http.client, json, ssl, threading, time, urllib.parse


def _context(certs, who):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    ctx.load_cert_chain(f"{certs}/{who}.crt", f"{certs}/{who}.key")
    return ctx


def client(certs, who, api):
    """A JSON client for the API server as `who` (admin, node): one connection per thread."""
    url = urllib.parse.urlparse(api)
    ctx = _context(certs, who)
    local = threading.local()
    def call(method, path, body=None):
        if not hasattr(local, "con"):
            local.con = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
        for attempt in range(40):
            local.con.request(method, path, body=json.dumps(body) if body is not None else None,
                              headers={"Content-Type": "application/json"})
            r = local.con.getresponse()
            data = json.loads(r.read() or b"{}")
            # NodeRestriction answers 500 while its informers have not seen a new Pod yet.
            if r.status < 500:
                break
            time.sleep(0.5)
        if r.status >= 300:
            raise SystemExit(f"{method} {path}: {r.status} {data.get('message')}")
        return data
    return call


def list_all(call, path, page=500):
    """Every item of a LIST, in pages; returns (items, resourceVersion, requests made)."""
    items, cont, requests = [], "", 0
    while True:
        sep = "&" if "?" in path else "?"
        out = call("GET", f"{path}{sep}limit={page}" + (f"&continue={cont}" if cont else ""))
        requests += 1
        items += out.get("items", [])
        cont = out["metadata"].get("continue")
        if not cont:
            return items, out["metadata"]["resourceVersion"], requests


def watch(certs, who, api, path, resource_version):
    """One WATCH from `resource_version`: yields (type, object) until the server ends it.
    A 410 Gone arrives as an ERROR event; bookmarks keep the version fresh."""
    url = urllib.parse.urlparse(api)
    con = http.client.HTTPSConnection(url.hostname, url.port, context=_context(certs, who))
    sep = "&" if "?" in path else "?"
    con.request("GET", f"{path}{sep}watch=1&allowWatchBookmarks=true"
                f"&resourceVersion={resource_version}&timeoutSeconds=3600")
    r = con.getresponse()
    if r.status != 200:
        raise SystemExit(f"WATCH {path}: {r.status} {r.read()[:200]!r}")
    try:
        for line in r:
            event = json.loads(line)
            yield event["type"], event["object"]
    finally:
        con.close()
