"""Group a flat perf profile by what the time is spent on (key generation and signing, TLS,
JSON, Kubernetes client, async runtime, allocation and copies, kernel...).

  perf report --no-children --sort symbol --stdio -g none | perf_groups.py

Reads lines "  12.34%  [.] symbol" ([k] for the kernel); a Rust symbol is put under its
crate (the first path segment, `<a::B as c::D>::f` under a; a generic of the standard library
under the first other crate it names), C symbols by name.
"""
import collections, re, sys

GROUPS = [
    ("crypto: keys, signing, hashes", {"ring", "aws_lc_rs", "aws_lc_sys", "rcgen", "sha2", "p256",
                                       "ecdsa", "elliptic_curve", "rsa", "crypto_bigint"}),
    ("TLS (rustls)", {"rustls", "tokio_rustls", "hyper_rustls", "rustls_pki_types", "webpki"}),
    ("JSON and serde", {"serde", "serde_json", "serde_yaml"}),
    ("X.509/DER/PEM parsing", {"x509_parser", "der_parser", "asn1_rs", "der", "yasna", "pem",
                               "base64", "x509_cert"}),
    ("Kubernetes client", {"kube_client", "kube_runtime", "kube_core", "k8s_openapi"}),
    ("async runtime and HTTP", {"tokio", "hyper", "hyper_util", "h2", "http", "mio", "tower",
                                "futures_util", "futures_core", "bytes", "axum"}),
    ("certsmith", {"certsmith"}),
    ("Rust std (clone, drop, collections, fmt)", {"core", "alloc", "std", "hashbrown"}),
]
STD = {"core", "alloc", "std", "hashbrown", "impl"}
C_CRYPTO = re.compile(r"^(aws_lc|ring_core|ecp_nistz|p256|nistz|bn_|BN_|ec_|EC_|ECDSA|sha256|sha512|"
                      r"SHA|fiat_|x25519|aes|gcm|ChaCha|chacha|poly1305|bignum|CRYPTO)")
C_MEMORY = re.compile(r"^(__)?(mem|malloc|free|cfree|calloc|realloc|_int_|str|sysmalloc|"
                      r"unlink_chunk|malloc_consolidate|tcache)")


def group(symbol, kernel):
    if kernel:
        return "kernel (syscalls, page faults, network)"
    crates = re.findall(r"(?<![:\w])([A-Za-z_]\w*)::", symbol)
    if crates:
        # A generic of the standard library is put under the first other crate it names
        # (`core::ptr::drop_in_place<serde_json::value::Value>` is JSON's cost).
        crate = next((c for c in crates if c not in STD), crates[0])
        for name, members in GROUPS:
            if crate in members:
                return name
        return crate
    if C_CRYPTO.match(symbol.lstrip("_")):
        return "crypto: keys, signing, hashes"
    if C_MEMORY.match(symbol):
        return "libc: malloc, free, memcpy, memmove"
    return "other C or unknown"


totals = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if m:
        totals[group(m.group(3).strip(), m.group(2) == "k")] += float(m.group(1))
for name, share in totals.most_common(12):
    print(f"  {share:6.2f}%  {name}")
