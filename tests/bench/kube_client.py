"""The bench scripts' JSON client for the local API server, with client certificates."""
import http.client, json, ssl, threading, time, urllib.parse


def client(certs, who, api):
    """A JSON client for the API server as `who` (admin, node): one connection per thread."""
    url = urllib.parse.urlparse(api)
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    ctx.load_cert_chain(f"{certs}/{who}.crt", f"{certs}/{who}.key")
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
