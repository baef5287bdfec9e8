#!/usr/bin/env python3
"""Runs moto's S3 server on loopback for one test, and stops it when the test is gone.

Binds 127.0.0.1 on a port the kernel picks (no race for a free port), creates the buckets named
on the command line, prints {"port": N} on one line once the server answers, then serves until
its standard input reaches EOF: the test closes it when it is done (or kills this process), and
if the test process dies in any way the pipe closes too, so the server never outlives its test.

Usage: moto_guard.py BUCKET...
"""
import json
import logging
import sys
import urllib.request

from moto.server import ThreadedMotoServer


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for bucket in sys.argv[1:]:
            request = urllib.request.Request(f"http://{host}:{port}/{bucket}", method="PUT")
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status != 200:
                    print(f"creating bucket {bucket}: HTTP {response.status}", file=sys.stderr)
                    return 1
        print(json.dumps({"port": port}), flush=True)
        sys.stdin.buffer.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
