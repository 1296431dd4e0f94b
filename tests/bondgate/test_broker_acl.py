"""The park broker's logins and ACL (deploy/mosquitto.acl, and the demo's): only the agent publishes
under bondgate/<park>/#, each sensor login only its own topics, screens and the healthcheck nothing.

Every login is tried against a real Mosquitto with the real command-line clients. A denied publish is
dropped silently under MQTT 3.1.1 (the publisher even gets its PUBACK), so "denied" is proven from
the receiving side: a subscriber that may read every topic in the matrix is listening, each login
publishes to each topic, then an allowed marker goes out last, and the subscriber must have received
exactly the allowed messages before the marker. Mosquitto delivers in order, so nothing is waited
for but the marker. Under MQTT 5 the same denial also comes back to the publisher as "Not
authorized". The passwords come from the files that use them (compose.yaml, deploy/edge.toml), so the
test also proves those files agree with the password file.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tomllib
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bondgate import demo
from bondgate.processes import child, free_port, tcp_ready
from testkit.mosquitto import MOSQUITTO, start_broker

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
WAIT = 10.0
SENSORS = "bondgate/sim"  # the sensor simulator's topic prefix (compose's `sensors` service)

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None,
    reason="mosquitto-clients not installed",
)


def run(coro: Coroutine[Any, Any, None], timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


# --- the matrix ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Publish:
    topic: str
    retain: bool


def park_topics(park: str) -> list[Publish]:
    """What the agent publishes (README, "Local MQTT topics"), and what a fake would target."""
    return [
        Publish(f"bondgate/{park}/gate-1/decision", retain=False),
        Publish(f"bondgate/{park}/gate-1/state", retain=True),
        Publish(f"bondgate/{park}/device/sensors/health", retain=True),
        Publish(f"bondgate/{park}/agent/status", retain=True),  # online, or the agent's will
    ]


SENSOR_TOPICS = [
    Publish(f"{SENSORS}/loop/loop1", retain=False),
    Publish(f"{SENSORS}/gate/g1/state", retain=False),
    Publish(f"{SENSORS}/plate/in-1", retain=False),
]
NOT_A_SENSOR_TOPIC = [
    Publish(f"{SENSORS}/loop/loop1/extra", retain=False),
    Publish(f"{SENSORS}/x", retain=True),
]


def allowed(login: str, park: str) -> set[str]:
    """Where each login may publish: the whole point of the ACL."""
    return {
        "edge": {p.topic for p in park_topics(park)},
        "sim": {p.topic for p in SENSOR_TOPICS},
    }.get(login, set())


async def tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv[0]} did not finish within {WAIT:g} s: {argv}") from None
    result = subprocess.CompletedProcess(argv, proc.returncode or 0, out.decode(), err.decode())
    if check:
        assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


class Logins:
    def __init__(self, port: int, passwords: Mapping[str, str]) -> None:
        self.port = port
        self.passwords = passwords

    def args(self, login: str) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", login, "-P", self.passwords[login]]

    async def pub(
        self, login: str, topic: str, payload: str, *, retain: bool = False, v5: bool = False
    ) -> str:
        """mosquitto_pub at QoS 1 (it returns once the broker has answered); its stderr."""
        argv = ["mosquitto_pub", *self.args(login), "-q", "1", "-t", topic, "-m", payload]
        argv += ["-r"] if retain else []
        argv += ["-V", "mqttv5"] if v5 else []
        return (await tool(*argv)).stderr

    @contextlib.asynccontextmanager
    async def sub(self, login: str, *topics: str, extra: tuple[str, ...] = ()) -> AsyncIterator[Subscriber]:
        argv = ["mosquitto_sub", *self.args(login), "-q", "1", "-F", "%r %t %p", *extra]
        for topic in topics:
            argv += ["-t", topic]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        subscriber = Subscriber(proc)
        try:
            yield subscriber
        finally:
            subscriber.reader.cancel()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


class Subscriber:
    """mosquitto_sub's lines ("<retain> <topic> <payload>") on a queue, read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            await self.lines.put(line.decode().rstrip("\n"))
        await self.lines.put(None)

    async def until(self, marker: str, timeout: float = WAIT) -> list[str]:
        """Every line before the one whose payload is `marker`."""
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while (line := await self.lines.get()) is not None:
                if line.endswith(f" {marker}"):
                    return seen
                seen.append(line)
        err = (await self.proc.stderr.read()).decode() if self.proc.stderr else ""
        raise AssertionError(f"mosquitto_sub ended before {marker!r}: {err}")

    async def ready(self, logins: Logins, login: str, topic: str) -> None:
        """Publish a probe until the subscriber shows it: then its subscriptions are in place."""
        async with asyncio.timeout(WAIT):
            for n in range(1_000_000):
                await logins.pub(login, topic, f"probe-{n}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        while (line := await self.lines.get()) is not None:
                            if line.endswith(f" probe-{n}"):
                                return
                            assert " probe-" in line, f"unexpected before the probe: {line}"
                        raise AssertionError("mosquitto_sub ended before subscribing")


async def check_publishers(logins: Logins, park: str) -> None:
    """Each login publishes to every topic; the agent (who may read all of them) receives only what
    the ACL allows, and the broker's retained state is still the agent's."""
    topics = park_topics(park) + SENSOR_TOPICS + NOT_A_SENSOR_TOPIC
    everyone = [name for name in ("edge", "sim", "screen", "health") if name in logins.passwords]
    async with logins.sub("edge", f"bondgate/{park}/#", f"{SENSORS}/#") as agent:
        await agent.ready(logins, "edge", f"bondgate/{park}/probe")
        for login in everyone:  # the agent first: a fake retained state would replace its state
            for publish in topics:
                await logins.pub(login, publish.topic, f"from-{login}", retain=publish.retain)
        await logins.pub("edge", f"bondgate/{park}/marker", "end")
        received = await agent.until("end")
    got = {(line.split(" ")[1], line.split(" ")[2]) for line in received if " probe-" not in line}
    expected = {(topic, f"from-{login}") for login in everyone for topic in allowed(login, park)}
    assert got == expected
    assert len(received) == len(expected)  # and each exactly once

    # a screen arriving later gets the retained station state and health: the agent's, no fake
    async with logins.sub("screen", f"bondgate/{park}/#", extra=("--retained-only",)) as screen:
        async with asyncio.timeout(WAIT):
            while screen.proc.returncode is None:  # it leaves at the first live message it receives
                await logins.pub("edge", f"bondgate/{park}/marker", "live")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(screen.proc.wait()), 0.5)
        await screen.reader
        lines = []
        while (line := screen.lines.get_nowait()) is not None:
            lines.append(line)
    assert sorted(lines) == sorted(f"1 {p.topic} from-edge" for p in park_topics(park) if p.retain)


async def check_mqtt5_refusals(logins: Logins, park: str) -> None:
    """Under MQTT 5 the publisher is told: reason code 135, "Not authorized", and only when denied."""
    for login in logins.passwords:
        for publish in park_topics(park)[:1] + SENSOR_TOPICS[:1]:
            err = await logins.pub(login, publish.topic, f"v5-{login}", v5=True)
            denied = publish.topic not in allowed(login, park)
            assert ("Not authorized" in err) == denied, (login, publish.topic, err)


async def first_line(logins: Logins, login: str, *topics: str) -> str:
    async with logins.sub(login, *topics, extra=("-C", "1")) as sub:
        line = await asyncio.wait_for(sub.lines.get(), WAIT)
    assert line is not None, f"mosquitto_sub as {login} ended without a message"
    return line


async def check_readers(logins: Logins, park: str) -> None:
    """What a login may not read, it does not receive. One subscription to the retained station
    state, then to $SYS/broker/uptime (also retained): the state comes first if it may be read (see
    test_retained_messages_come_in_the_order_of_the_filters), so a reader that may not read it gets
    the uptime first, and one that may not read $SYS gets the state."""
    state = f"bondgate/{park}/gate-1/state"
    await logins.pub("edge", state, "state", retain=True)
    assert await first_line(logins, "screen", state, "$SYS/broker/uptime") == f"1 {state} state"
    if "health" in logins.passwords:
        line = await first_line(logins, "health", state, "$SYS/broker/uptime")
        assert line.split(" ")[1] == "$SYS/broker/uptime", line


def test_retained_messages_come_in_the_order_of_the_filters(tmp_path: Path) -> None:
    """What check_readers relies on, shown with a login that may read both."""
    broker = start_broker(
        tmp_path, users={"both": "pw"}, acl="user both\ntopic readwrite #\ntopic read $SYS/#\n"
    )
    logins = Logins(broker.port, {"both": "pw"})

    async def scenario() -> None:
        await logins.pub("both", "a/state", "state", retain=True)
        assert await first_line(logins, "both", "a/state", "$SYS/broker/uptime") == "1 a/state state"
        line = await first_line(logins, "both", "$SYS/broker/uptime", "a/state")
        assert line.split(" ")[1] == "$SYS/broker/uptime"

    try:
        run(scenario())
    finally:
        broker.stop()


# --- deploy/ and compose ---------------------------------------------------------------------------
def deploy_passwords() -> dict[str, str]:
    """Each login's password, taken from where it is used."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    health = compose["mosquitto"]["healthcheck"]["test"]
    sensors = compose["sensors"]["command"]
    edge = tomllib.loads((DEPLOY / "edge.toml").read_text())["mqtt"]["broker"]
    readme = (DEPLOY / "README.md").read_text()
    assert "screen-demo-password" in readme  # the screens' login is documented with its password
    return {
        edge["username"]: edge["password"],
        sensors[sensors.index("--username") + 1]: sensors[sensors.index("--password") + 1],
        health[health.index("-u") + 1]: health[health.index("-P") + 1],
        "screen": "screen-demo-password",
    }


@pytest.fixture
def deploy_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = start_broker(tmp_path, password_file=DEPLOY / "mosquitto.passwd", acl=DEPLOY / "mosquitto.acl")
    try:
        yield broker
    finally:
        broker.stop()


def test_deploy_logins_publish_only_what_the_acl_allows(deploy_broker) -> None:  # type: ignore[no-untyped-def]
    logins = Logins(deploy_broker.port, deploy_passwords())
    assert set(logins.passwords) == {"edge", "sim", "health", "screen"}
    park = tomllib.loads((DEPLOY / "edge.toml").read_text())["park_id"]

    async def scenario() -> None:
        await check_publishers(logins, park)
        await check_mqtt5_refusals(logins, park)
        await check_readers(logins, park)

    run(scenario())


def test_the_compose_healthcheck_and_the_agents_sensor_topics_are_allowed(deploy_broker) -> None:  # type: ignore[no-untyped-def]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    check = [arg.replace("$$", "$") for arg in compose["mosquitto"]["healthcheck"]["test"][1:]]
    edge = tomllib.loads((DEPLOY / "edge.toml").read_text())
    [sensor_topic] = {s["topic"] for s in edge["devices"]["sensors"]["sensors"]}
    logins = Logins(deploy_broker.port, deploy_passwords())

    async def scenario() -> None:
        out = await tool(*check, "-h", "127.0.0.1", "-p", str(deploy_broker.port))
        assert out.stdout.strip().endswith("seconds")
        # the agent's configured sensor topic is one the simulator may write and the agent may read
        async with logins.sub("edge", sensor_topic) as agent:
            await agent.ready(logins, "sim", sensor_topic.replace("+", "loop1"))

    run(scenario())


def test_compose_mounts_the_acl_the_broker_config_names() -> None:
    conf = (DEPLOY / "mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(" ", 1) for line in conf if line and not line.startswith("#"))
    mounts = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["mosquitto"]["volumes"]
    mounted = {target.removesuffix(":ro"): source for source, target in (m.split(":", 1) for m in mounts)}
    assert mounted[settings["acl_file"]] == "./deploy/mosquitto.acl"
    assert mounted[settings["password_file"]] == "./deploy/mosquitto.passwd"
    assert settings["allow_anonymous"] == "false"


# --- the demo --------------------------------------------------------------------------------------
def test_the_demo_broker_has_the_same_rules(tmp_path: Path) -> None:
    port = free_port()
    conf = demo.write_broker_config(tmp_path, port)
    logins = Logins(port, demo.BROKER_LOGINS)
    assert set(logins.passwords) == {"edge", "sim", "screen"}

    async def scenario() -> None:
        await check_publishers(logins, demo.PARK)
        await check_mqtt5_refusals(logins, demo.PARK)
        await check_readers(logins, demo.PARK)

    with child("mosquitto", [MOSQUITTO, "-c", str(conf)], tmp_path / "mosquitto.log", tcp_ready(port), 10):
        run(scenario())
