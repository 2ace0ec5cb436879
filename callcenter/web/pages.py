"""Shell: the static pages and assets the controller serves (read once from the package's
``web/static``): plain HTML, CSS and JavaScript modules, no build step, nothing fetched at run time.

``register_pages(router)`` mounts ``GET /supervisor`` (the console's page: it signs in through
``/login`` and reads its data from the API and ``/supervisor/events``) and ``GET /static/{name}``
for the assets listed in ``ASSETS`` (any other name is 404: no path from a request reaches the
file system).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from aiohttp import web

from callcenter.web.http import HTTPError, Router

#: The assets served under /static/, with their content types.
ASSETS: Final = {
    "screens.css": "text/css",
    "wallboard.css": "text/css",
    "wallboard.js": "text/javascript",
    "supervisor.css": "text/css",
    "supervisor.js": "text/javascript",
    "format.js": "text/javascript",
    "agent.css": "text/css",
    "agent.js": "text/javascript",
}


@cache
def page(name: str) -> bytes:
    """The bytes of ``web/static/<name>`` (an HTML page shipped with the package)."""
    return resources.files("callcenter.web").joinpath("static", name).read_bytes()


def page_response(name: str) -> web.Response:
    """``web/static/<name>`` as a signed-in person's page: HTML, never cached."""
    return web.Response(
        body=page(name), content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


def register_pages(router: Router) -> None:
    async def supervisor(req: web.Request) -> web.StreamResponse:
        return page_response("supervisor.html")

    async def asset(req: web.Request) -> web.StreamResponse:
        name = req.match_info["name"]
        kind = ASSETS.get(name)
        if kind is None:
            raise HTTPError(404, "not_found", f"no asset {name!r}")
        return web.Response(
            body=page(name), content_type=kind, charset="utf-8", headers={"Cache-Control": "no-cache"}
        )

    router.add("GET", "/supervisor", supervisor)
    router.add("GET", "/static/{name}", asset)
