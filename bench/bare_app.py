"""The ceiling of this stack: a bare Starlette app on the mock's uvicorn configuration.

It routes exactly like the mock (one catch-all ``/{path:path}`` route, every method, no slash redirects),
reads the request body the way a POST handler must, and answers a fixed JSON body. Nothing else: no
validation, no rendering, no state. Whatever the mock achieves is measured against this.

Run: ``python bench/bare_app.py --port 8799`` (the harness does it for you).
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
BODY = b'{"object":"list","data":[{"id":"bare","object":"model"}]}'


async def endpoint(request: Request) -> Response:
    if request.method == "POST":
        await request.body()
    return Response(BODY, media_type="application/json")


def create_app() -> Starlette:
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)])
    app.router.redirect_slashes = False
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # the same call the mock's CLI makes (mockserver/cli.py): access log only at info and below
    access_log = args.log_level in ("info", "debug", "trace")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level, access_log=access_log)


if __name__ == "__main__":
    main()
