"""The web panel's files (bridge/control/panel.py) behind the real control server and guard:
the page and every file it names are served from the package, with headers that keep other
sites from framing it; nothing else on disk is reachable; the page needs no token (it holds
no data) while the API it calls does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from importlib import resources

import pytest

from bridge.control import panel
from tests.kit.control_api import TOKEN, Api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    served = await Api.serve(token=TOKEN, routes=panel.routes())
    yield served
    await served.close()


def framing_forbidden(headers: Mapping[str, str]) -> None:
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, csp
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"


async def test_the_page_and_every_file_it_names_are_served_without_a_token(api: Api) -> None:
    page = await api.http.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    framing_forbidden(page.headers)
    named = re.findall(r'(?:src|href)="([^"]+)"', await page.text())
    assert sorted(named) == ["static/icon.svg", "static/panel.css", "static/panel.js"]
    kinds = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    fetched: set[str] = set()
    while named:  # the page's files, then the modules the scripts import
        path = named.pop()
        fetched.add(path)
        response = await api.http.get(f"/{path}")
        assert response.status == 200, path
        assert response.content_type == kinds[path[path.rindex(".") :]], path
        body = await response.text()
        assert len(body) > 100, path
        framing_forbidden(response.headers)
        imported = re.findall(r'^import .* from "\./([^"]+)";$', body, re.MULTILINE)
        named += [f"static/{name}" for name in imported if f"static/{name}" not in fetched]
    assert {"static/api.js", "static/queue.js", "static/view.js"} <= fetched


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/", "/static/..%2Fpanel.py", "/static/../panel.py", "/index.html"],
)
async def test_nothing_else_is_served(api: Api, path: str) -> None:
    # With the token: the guard lets it through, and the panel's routes have nothing there.
    response = await api.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 404, path
    assert (await response.json())["error"] == "not_found"


async def test_the_api_behind_the_page_still_needs_the_token(api: Api) -> None:
    assert (await api.http.get("/v1/status")).status == 401
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    assert (await api.http.get("/v1/status", headers=authorized)).status == 200


@pytest.mark.parametrize("name", [n for n in panel.ASSETS if n.endswith(".js")])
def test_the_scripts_insert_text_only_as_text(name: str) -> None:
    """The one rule that keeps a queued text from becoming markup in the panel."""
    script = (resources.files("bridge.control") / "static" / name).read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, f"{name} uses {sink}"
