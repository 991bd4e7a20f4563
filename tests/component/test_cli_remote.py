"""``heygen-bridge say|status|interrupt`` as a user runs them: real processes against a real
daemon on the demo avatar (its own process, a token set), and against no daemon at all."""

from __future__ import annotations

import functools
import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from tests.kit.eventually import eventually
from tests.kit.process import Child, launched
from tests.kit.usershell import Ran, run_argv, user_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLI = (sys.executable, "-m", "bridge")
TOKEN = "cli-test-token-5f1e"
LONG = " ".join(["This sentence keeps the avatar talking for a good while."] * 6)
# ``s12 queued, position 1``; ``s12 s13 queued (2 parts of request r7), up now``
SAID = re.compile(
    r"^(?P<ids>\S+(?: \S+)*) (?P<state>queued|sending|speaking)"
    r"(?: \(\d+ parts of request \S+\))?, (?:position [1-9]\d*|up now)$"
)


@dataclass
class Daemon:
    """The daemon under test, and a config file that points the CLI at it."""

    child: Child
    folder: Path

    @property
    def url(self) -> str:
        return self.child.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def cli_config(self, name: str, **control: Any) -> Path:
        """A config file for the CLI: ``control`` (default: the daemon's host and port)."""
        path = self.folder / f"{name}.yaml"
        control = {"host": "127.0.0.1", "port": self.port, **control}
        path.write_text(yaml.safe_dump({"control": control}))
        return path

    async def status(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{self.url}/v1/status", headers=headers) as resp,
            ):
                body: dict[str, Any] = await resp.json()
                return body
        except aiohttp.ClientConnectionError:
            self.child.check_running()
            raise

    async def post(self, path: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}{path}", headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()

    async def item(self, item_id: str) -> dict[str, Any] | None:
        """The speech item ``item_id`` as the status shows it (current, queued or recent)."""
        speech = (await self.status())["speech"]
        every = [speech.get("current"), *speech.get("queue", []), *speech.get("recent", [])]
        return next((i for i in every if i and i.get("id") == item_id), None)

    async def wait_item(
        self, item_id: str, until: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        def holds(item: dict[str, Any] | None) -> bool:
            return item is not None and until(item)

        found = await eventually(
            functools.partial(self.item, item_id), until=holds, within=30, what=what, every=0.1
        )
        assert found is not None
        return found

    def log_tail(self) -> str:
        return self.child.log_tail()


async def cli(*args: str, env: dict[str, str]) -> Ran:
    return await run_argv([*CLI, *args], env=env, command=" ".join(["heygen-bridge", *args]))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    """``heygen-bridge run`` on the demo avatar (no camera or mic: this is about control),
    with a token, its control port chosen by itself; yielded once the avatar is live."""
    folder = tmp_path_factory.mktemp("cli-remote")
    config = {
        "provider": "demo",
        "camera": {"enabled": False},
        "microphone": {"enabled": False},
        "control": {"port": 0},
    }
    (folder / "daemon.yaml").write_text(yaml.safe_dump(config))
    env = user_env(folder, HEYGEN_BRIDGE_TOKEN=TOKEN, XDG_STATE_HOME=str(folder / "state"))
    argv = [*CLI, "--config", str(folder / "daemon.yaml"), "run"]
    async with launched("the daemon", argv, log_path=folder / "daemon.log", env=env) as child:
        running = Daemon(child, folder)
        await eventually(
            running.status,
            until=lambda s: s["session"]["state"] == "live",
            within=30,
            what="the demo avatar live",
            every=0.1,
        )
        yield running


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's shell with the daemon's token exported."""
    return user_env(tmp_path, HEYGEN_BRIDGE_TOKEN=TOKEN)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound here (so nothing else takes it) but
    never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def said_ids(run: Ran) -> list[str]:
    """The item ids ``say`` printed, checking it printed one line and succeeded."""
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 1, run.out
    match = SAID.match(lines[0])
    assert match is not None, lines[0]
    return match["ids"].split()


async def test_say_queues_the_text_and_the_avatar_speaks_it(
    daemon: Daemon, env: dict[str, str]
) -> None:
    config = daemon.cli_config("say")
    run = await cli("--config", str(config), "say", "Hello from the command line.", env=env)
    [item_id] = said_ids(run)
    done = await daemon.wait_item(item_id, lambda i: i["state"] == "done", "the item spoken")
    assert done["text"] == "Hello from the command line." and done["mode"] == "repeat"


async def test_say_in_chat_mode_with_the_url_option(daemon: Daemon, env: dict[str, str]) -> None:
    run = await cli("say", "How are you today?", "--mode", "chat", "--url", daemon.url, env=env)
    [item_id] = said_ids(run)
    item = await daemon.wait_item(item_id, lambda i: True, "the item in the status")
    assert item["mode"] == "chat"


async def test_a_text_too_long_for_one_item_is_split_and_every_part_printed(
    daemon: Daemon, env: dict[str, str]
) -> None:
    sentence = "A sentence of some length, said again and again by the demo avatar. "
    text = (sentence * 18).strip()  # ~1250 characters: the demo speaks at most 1000 at once
    run = await cli("say", text, "--url", daemon.url, env=env)
    try:
        ids = said_ids(run)
        assert len(ids) == 2 and "(2 parts of request " in run.out, run.out
        items = [await daemon.wait_item(i, lambda i: True, f"{i} in the status") for i in ids]
        assert [item["part"] for item in items] == [1, 2]
        assert " ".join(item["text"] for item in items) == text
    finally:  # the next test should not wait a minute and a half behind this speech
        await daemon.post("/v1/queue/clear")
        await cli("interrupt", "--url", daemon.url, env=env)


async def test_say_now_interrupts_the_current_speech_and_goes_first(
    daemon: Daemon, env: dict[str, str]
) -> None:
    config = str(daemon.cli_config("now"))
    [long_id] = said_ids(await cli("--config", config, "say", LONG, env=env))
    await daemon.wait_item(long_id, lambda i: i["state"] == "speaking", "the long text spoken")
    [urgent_id] = said_ids(await cli("--config", config, "say", "Stop! Urgent.", "--now", env=env))
    cut = await daemon.wait_item(long_id, lambda i: i["state"] == "dropped", "the long text cut")
    assert cut["detail"] == "interrupted"
    await daemon.wait_item(urgent_id, lambda i: i["state"] == "done", "the urgent text spoken")


async def test_interrupt_stops_what_is_being_said(daemon: Daemon, env: dict[str, str]) -> None:
    config = str(daemon.cli_config("interrupt"))
    [long_id] = said_ids(await cli("--config", config, "say", LONG, env=env))
    await daemon.wait_item(long_id, lambda i: i["state"] == "speaking", "the long text spoken")
    run = await cli("--config", config, "interrupt", env=env)
    assert run.code == 0, run.err
    assert run.out.strip() == f"interrupted {long_id}"
    cut = await daemon.wait_item(long_id, lambda i: i["state"] == "dropped", "the text cut")
    assert cut["detail"] == "interrupted"

    again = await cli("--config", config, "interrupt", env=env)
    assert (again.code, again.out.strip()) == (0, "nothing was being said"), again.err


async def test_status_reads_as_a_summary_or_as_json(daemon: Daemon, env: dict[str, str]) -> None:
    config = str(daemon.cli_config("status"))
    run = await cli("--config", config, "status", env=env)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].endswith(f"at {daemon.url}")
    assert re.match(r"^  session +live, session \S+", lines[2]), run.out
    assert "  provider    demo" in lines
    assert "  camera      disabled (camera.enabled: false)" in lines
    assert "  microphone  disabled (microphone.enabled: false)" in lines
    assert any(line.startswith("  queue ") for line in lines), run.out

    raw = await cli("--config", config, "status", "--json", env=env)
    assert raw.code == 0, raw.err
    status = json.loads(raw.out)
    assert status["provider"] == "demo" and status["session"]["state"] == "live"


@pytest.mark.parametrize("text", ["", "   \n\t "])
async def test_empty_text_is_bad_input_exit_2_and_nothing_is_queued(
    daemon: Daemon, env: dict[str, str], text: str
) -> None:
    before = (await daemon.status())["speech"]
    run = await cli("say", text, "--url", daemon.url, env=env)
    assert run.code == 2, (run.out, run.err)
    assert run.out == "" and len(run.err.splitlines()) == 1, run.err
    assert run.err.startswith("heygen-bridge: text: "), run.err  # names the field
    after = (await daemon.status())["speech"]
    assert after.get("pending") == before.get("pending")
    assert after.get("queue") == before.get("queue")


async def test_the_token_comes_from_the_environment_or_the_secrets_file(
    daemon: Daemon, tmp_path: Path
) -> None:
    bare = user_env(tmp_path)
    missing = await cli("status", "--url", daemon.url, env=bare)
    assert missing.code == 1 and len(missing.err.splitlines()) == 1, missing.err
    assert "token" in missing.err and "HEYGEN_BRIDGE_TOKEN" in missing.err

    wrong = await cli("status", "--url", daemon.url, env={**bare, "HEYGEN_BRIDGE_TOKEN": "nope"})
    assert wrong.code == 1 and "token" in wrong.err and "nope" not in wrong.err + wrong.out

    secrets = tmp_path / "env"
    secrets.write_text(f"HEYGEN_BRIDGE_TOKEN={TOKEN}\n")
    config = tmp_path / "with-secrets.yaml"
    config.write_text(
        yaml.safe_dump({"secrets_file": str(secrets), "control": {"port": daemon.port}})
    )
    ok = await cli("--config", str(config), "status", env=bare)
    assert ok.code == 0, ok.err
    assert TOKEN not in ok.out + ok.err


async def test_a_wildcard_bind_in_the_config_is_reached_over_loopback(
    daemon: Daemon, tmp_path: Path
) -> None:
    """The default config file ($XDG_CONFIG_HOME/heygen-bridge/config.yaml) says 0.0.0.0."""
    control = {"host": "0.0.0.0", "port": daemon.port}
    env = user_env(tmp_path, config={"control": control}, HEYGEN_BRIDGE_TOKEN=TOKEN)
    run = await cli("status", env=env)
    assert run.code == 0, run.err
    assert run.out.splitlines()[0].endswith(f"at http://127.0.0.1:{daemon.port}")


@pytest.mark.parametrize("command", [("say", "Hello"), ("status",), ("interrupt",)])
async def test_with_no_daemon_one_clear_line_and_exit_1(
    command: tuple[str, ...], refusing_port: int, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"control": {"port": refusing_port}}))
    run = await cli("--config", str(config), *command, env=user_env(tmp_path))
    assert run.code == 1
    assert run.out == ""
    assert run.err == (
        f"heygen-bridge: no daemon answers at http://127.0.0.1:{refusing_port} "
        "(start it with: heygen-bridge run)\n"
    )


async def test_something_else_on_the_port_is_named_as_such(tmp_path: Path) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<h1>Not here</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        run = await cli("status", "--url", f"http://127.0.0.1:{port}", env=user_env(tmp_path))
    finally:
        await runner.cleanup()
    assert run.code == 1
    assert run.err.strip() == (
        f"heygen-bridge: http://127.0.0.1:{port} answered 404 Not Found: "
        "is a heygen-bridge daemon listening there?"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("status", "--url", "127.0.0.1:8765"), "--url: '127.0.0.1:8765' is not an address"),
        (("status",), "control.port is 0"),
    ],
)
async def test_an_address_that_cannot_be_used_is_bad_usage_exit_2(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"control": {"port": 0}}))
    run = await cli("--config", str(config), *args, env=user_env(tmp_path))
    assert run.code == 2
    assert len(run.err.splitlines()) == 1 and says in run.err, run.err
