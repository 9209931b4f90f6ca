"""Docker HEALTHCHECK for tritonlite images: exit 0 when the URL answers 200, 1 otherwise.

    python healthcheck.py [URL]      (default http://127.0.0.1:8000/v2/health/ready)

Standard library only, so it runs with the image's interpreter and needs no curl in the image.
TRITONLITE_HEALTHCHECK_URL, when set, overrides both (for a server started with another --http-port:
``docker run -e TRITONLITE_HEALTHCHECK_URL=http://127.0.0.1:9000/v2/health/ready ...``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/v2/health/ready"


def main(argv: list[str]) -> int:
    url = os.environ.get("TRITONLITE_HEALTHCHECK_URL") or (argv[1] if len(argv) > 1 else DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - a local URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
