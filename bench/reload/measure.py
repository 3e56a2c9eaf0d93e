#!/usr/bin/env python3
"""Hot-reload latency: how long from a rule's new version landing in the rules directory
to the first payment decided with it.

    python3 bench/reload/measure.py BASE_URL KEY RULES_DIR [SWAPS] [RULE]

Each swap writes a new version of RULE's component (`limits` when absent; the same code
with a custom section that changes its bytes, so it must be compiled, and prepared again
if the rule prepares) by writing a temporary file and renaming it into place, as
deployment tools do; then submits payments back to back until one is decided by a rule
set whose RULE has the new version's sha256. The key must see whole decisions (an
operator's), as the rules' versions are not in a submitting system's view. Prints
each latency and the median, p90 and maximum. Used by bench/reload/run.sh.
"""
import hashlib
import json
import os
import sys
import time
import urllib.request


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def with_custom_section(wasm, payload):
    name = b"payrules-bench"
    body = leb128(len(name)) + name + payload
    return wasm + b"\x00" + leb128(len(body)) + body


def submit(base, key, n):
    body = json.dumps({
        "end_to_end_id": f"RELOAD-{n}", "amount": "10.00", "currency": "USD",
        "debtor": {"name": "Harbor Coffee Roasters LLC", "country": "US", "account": {"id": f"D{n}"}},
        "debtor_agent": {"member_id": "021000021"},
        "creditor": {"name": "Maria Gonzalez", "country": "US", "account": {"id": f"C{n}"}},
        "creditor_agent": {"member_id": "121000248"},
    }).encode()
    request = urllib.request.Request(base + "/v1/payments", data=body, method="POST", headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json",
        "Idempotency-Key": f"reload-bench-{os.getpid()}-{n}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def main():
    base, key, rules_dir = sys.argv[1:4]
    swaps = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    rule = sys.argv[5] if len(sys.argv) > 5 else "limits"
    path = os.path.join(rules_dir, rule.replace("-", "_") + ".wasm")
    original = open(path, "rb").read()
    latencies = []
    n = 0
    for swap in range(swaps):
        wasm = with_custom_section(original, f"{time.time_ns()}-{swap}".encode())
        version = hashlib.sha256(wasm).hexdigest()
        temporary = path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(wasm)
        landed = time.monotonic()
        os.rename(temporary, path)
        while True:
            n += 1
            decision = submit(base, key, n)
            if any(r["name"] == rule and r["version"] == version for r in decision["rules"]):
                latencies.append((time.monotonic() - landed) * 1000)
                break
            if time.monotonic() - landed > 10:
                sys.exit(f"swap {swap}: the new version was not deciding after 10 s")
        time.sleep(0.3)
    latencies.sort()
    print("landing to deciding, ms:", " ".join(f"{l:.0f}" for l in latencies))
    print(f"median {latencies[len(latencies) // 2]:.0f} ms, "
          f"p90 {latencies[int(len(latencies) * 0.9)]:.0f} ms, max {latencies[-1]:.0f} ms "
          f"({swaps} swaps)")


if __name__ == "__main__":
    main()
