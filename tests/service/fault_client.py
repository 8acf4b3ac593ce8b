"""Send events to a running prodfusion service, retrying each batch until it is acknowledged.

Used by the SIGKILL fault test (tests/service/test_fault.py) and runnable by hand::

    python tests/service/fault_client.py --url http://127.0.0.1:8000 --out acked.txt

Every batch keeps its event ids across retries (connection errors, 5xx), so a batch the
server committed but could not acknowledge before dying is stored once, not twice. Each
acknowledged event id is appended to ``--out`` (flushed) as soon as the 200 arrives.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import httpx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True, help="file receiving acknowledged event ids")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--product", default="0001")
    ap.add_argument("--deadline-s", type=float, default=60.0, help="give up after this long")
    args = ap.parse_args(argv)
    failures = 0
    end = time.monotonic() + args.deadline_s
    with open(args.out, "a", encoding="utf-8") as out, httpx.Client(timeout=5.0) as http:
        for b in range(args.batches):
            rid = uuid.uuid4().hex
            events = [{"event_id": f"b{b}-e{i}-{uuid.uuid4().hex[:8]}", "type": "view",
                       "request_id": rid, "product_id": args.product, "visitor": f"vis-{b % 50}"}
                      for i in range(args.batch_size)]
            body = json.dumps({"events": events})
            while True:
                if time.monotonic() > end:
                    print(f"deadline reached at batch {b}", file=sys.stderr)
                    return 1
                try:
                    r = http.post(f"{args.url}/v1/events", content=body,
                                  headers={"content-type": "application/json"})
                    if r.status_code == 200:
                        break
                    if r.status_code < 500:
                        print(f"refused: {r.status_code} {r.text}", file=sys.stderr)
                        return 2
                except httpx.TransportError:
                    pass
                failures += 1
                time.sleep(0.05)
            out.write("".join(e["event_id"] + "\n" for e in events))
            out.flush()
    print(json.dumps({"batches": args.batches, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
