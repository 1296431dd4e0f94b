"""MQTT sensors against a real Mosquitto on a free loopback port: our driver with our simulator, with
the Mosquitto command-line clients as independent peers, through broker restarts, with passwords
and with TLS. Waits have generous upper bounds (WAIT); no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from devices.drivers.mqtt_sensors import MqttSensorsConfig, MqttSensorsDriver
from devices.events import SensorMessage
from devices.health import DeviceError, State
from devices.protocols.sensor_payloads import GateSensor, LoopDetector, PlateResult
from devices.transports.mqtt import BrokerConfig, MqttConnection, MqttMessage, MqttSetupError, TlsConfig
from edge.config import EdgeSettings
from firmware_sim.mqtt_sensor import MALFORMED, MqttSensorSim
from kernel.config import ConfigError, load_settings
from testkit.mosquitto import MOSQUITTO, Broker, start_broker

WAIT = 10.0
PREFIX = "bondgate/sim"
SENSORS = [
    {"name": "gates", "type": "gate", "topic": f"{PREFIX}/gate/+/state"},
    {"name": "loop1", "type": "loop", "topic": f"{PREFIX}/loop/loop1"},
    {"name": "plates", "type": "plate", "topic": f"{PREFIX}/plate/#"},
]


def run(coro: Coroutine[Any, Any, None], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def config(port: int, **broker: Any) -> MqttSensorsConfig:
    return MqttSensorsConfig(broker=BrokerConfig(port=port, **broker), sensors=SENSORS, connect_timeout_s=2)


async def next_message(driver: MqttSensorsDriver) -> SensorMessage:
    event = await driver.events.get(WAIT)
    assert isinstance(event, SensorMessage)
    return event


# --- events ------------------------------------------------------------------------------------------
def test_valid_messages_become_events(mosquitto: Broker) -> None:
    async def scenario() -> None:
        async with MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            async with MqttSensorSim(port=mosquitto.port) as sim:
                await sim.gate("open", name="north")
                await sim.loop(True)
                await sim.plate("粤B12345", lane="in-2", image_url="http://cam/1.jpg")
                gate, loop, plate = [await next_message(driver) for _ in range(3)]
        assert (gate.device, gate.sensor_type, gate.topic) == ("gates", "gate", f"{PREFIX}/gate/north/state")
        assert isinstance(gate.payload, GateSensor) and gate.payload.state == "open"
        assert isinstance(loop.payload, LoopDetector) and loop.payload.occupied is True
        assert isinstance(plate.payload, PlateResult)
        assert (plate.device, plate.payload.plate, plate.payload.lane) == ("plates", "粤B12345", "in-2")
        assert gate.at <= loop.at <= plate.at <= time.monotonic()
        assert driver.accepted == {"gates": 1, "loop1": 1, "plates": 1}
        assert driver.rejected == {"gates": 0, "loop1": 0, "plates": 0}

    run(scenario())


def test_malformed_payloads_are_counted_logged_once_and_never_stop_the_driver(
    mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            async with MqttSensorSim(port=mosquitto.port) as sim:
                with caplog.at_level(logging.WARNING, logger="devices.drivers.mqtt_sensors"):
                    for kind in MALFORMED:
                        await sim.malformed(kind, sim.loop_topic())
                    await sim.malformed("wrong_type", sim.gate_topic("south"))
                    await sim.loop(False)
                    event = await next_message(driver)  # after every bad one: ordered per topic
            assert isinstance(event.payload, LoopDetector) and event.payload.occupied is False
            assert driver.rejected == {"gates": 1, "loop1": len(MALFORMED), "plates": 0}
            assert driver.last_rejection["loop1"].kind == "invalid_json"  # the random binary comes last
            assert driver.last_rejection["gates"].kind == "wrong_type"
            # a sensor sending garbage is a fault of the device (outside finding: it showed UP, errors 0),
            # DEGRADED until that sensor sends a valid message, however long it is quiet
            health = driver.supervisor.health
            assert health.state == State.DEGRADED and health.errors >= len(MALFORMED) + 1
            gates = f"gates: payload on '{PREFIX}/gate/south/state' rejected: "
            assert health.reason.startswith(gates)
            assert driver.details()["sensors"]["loop1"]["rejected"] == len(MALFORMED)
            assert [c[: len(gates)] for c in driver.details()["conditions"]] == [gates]  # loop1's is valid
            assert driver.events.empty()
            driver.supervisor._recover_after_s = 0.05  # the quiet spell a fault needs, made short
            with pytest.raises(TimeoutError):
                await driver.supervisor.wait_for(State.UP, 0.5)
            async with MqttSensorSim(port=mosquitto.port) as sim:
                await sim.gate("closed", name="south")
                await next_message(driver)
            await driver.supervisor.wait_for(State.UP, WAIT)
        rejected = [r for r in caplog.records if r.getMessage() == "sensor payload rejected"]
        assert [r.sensor for r in rejected] == ["loop1", "gates"]  # type: ignore[attr-defined]  # once per burst
        assert rejected[0].kind == "invalid_json" and "invalid JSON" in rejected[0].reason  # type: ignore[attr-defined]

    run(scenario())


def test_a_payload_from_mosquitto_pub_is_accepted(mosquitto: Broker) -> None:
    async def scenario() -> None:
        async with MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat()
            payload = f'{{"state": "closed", "ts": "{now}", "battery": 97}}'
            await _run_tool(
                "mosquitto_pub",
                "-p",
                str(mosquitto.port),
                "-q",
                "1",
                "-t",
                f"{PREFIX}/gate/g7/state",
                "-m",
                payload,
            )
            event = await next_message(driver)
        assert isinstance(event.payload, GateSensor) and event.payload.state == "closed"
        assert event.payload.ts.utcoffset() == dt.timedelta(hours=8)

    run(scenario())


def test_mosquitto_sub_receives_what_we_publish_with_qos1_and_retain(mosquitto: Broker) -> None:
    async def scenario() -> None:
        async with MqttConnection(BrokerConfig(port=mosquitto.port), name="agent") as conn:
            await conn.wait_ready(WAIT)
            await conn.publish("bondgate/edge/lane1/decision", b'{"release": true}', qos=1, retain=True)
        # a subscriber arriving afterwards gets it from the broker: it was retained
        out = await _run_tool(
            "mosquitto_sub", "-p", str(mosquitto.port), "-q", "1", "-t", "bondgate/edge/#",
            "-C", "1", "-W", "5", "-F", "%r %q %t %p",
        )  # fmt: skip
        assert out.strip() == '1 1 bondgate/edge/lane1/decision {"release": true}'

    run(scenario())


def test_a_subscription_added_while_connected_works_and_publish_waits_for_the_ack(mosquitto: Broker) -> None:
    async def scenario() -> None:
        got: asyncio.Queue[MqttMessage] = asyncio.Queue()
        async with MqttConnection(BrokerConfig(port=mosquitto.port)) as conn:
            await conn.wait_ready(WAIT)
            conn.subscribe("late/+", got.put_nowait, qos=1)
            await conn.wait_subscribed(WAIT)
            for qos in (0, 1, 2):
                await conn.publish(f"late/{qos}", f"q{qos}", qos=qos)
            received = [await asyncio.wait_for(got.get(), WAIT) for _ in range(3)]
        assert sorted((m.topic, m.payload) for m in received) == [
            ("late/0", b"q0"), ("late/1", b"q1"), ("late/2", b"q2"),
        ]  # fmt: skip

    run(scenario())


# --- retained and stale messages: state, never a trigger ----------------------------------------------
def loop_payload(occupied: bool, ts: float) -> bytes:
    return json.dumps({"occupied": occupied, "ts": ts}).encode()


async def wait_until(predicate: Callable[[], object], what: str) -> None:
    async with asyncio.timeout(WAIT):  # an upper bound, never a measured duration
        while not predicate():
            await asyncio.sleep(0.01)


def test_a_retained_message_is_the_last_known_state_never_an_event(mosquitto: Broker) -> None:
    """A loop left occupied, retained at the broker, is what the agent gets on every (re)subscribe:
    it must not fire as a fresh vehicle each time. Orderly: the broker sends retained messages right
    after the SUBACK, so a live marker published once the driver is ready arrives after them."""

    async def scenario() -> None:
        cfg = config(mosquitto.port, client_id="sensors-under-test")
        async with MqttSensorSim(port=mosquitto.port) as sim:
            topic = sim.loop_topic()
            await sim.publish_raw(topic, loop_payload(True, time.time() - 60), retain=True)  # stale too
            async with MqttSensorsDriver("park-mqtt", cfg) as driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                await sim.gate("open", name="north")  # the marker: retained ones come before it
                state = await next_message(driver)  # the loop's state, for whoever follows it
                assert (state.device, state.live, state.payload.occupied) == ("loop1", False, True)
                marker = await next_message(driver)
                assert (marker.device, marker.live) == ("gates", True)
                assert driver.retained["loop1"] == 1 and driver.accepted["loop1"] == 0
                known = driver.known[topic]
                assert isinstance(known.payload, LoopDetector) and known.payload.occupied and known.retained
                assert driver.supervisor.health.state == State.UP  # the last known state: no fault

                # a reconnect (another client takes the session's client id over): retained again
                failures = driver.connection.failures
                takeover = [
                    "-p",
                    str(mosquitto.port),
                    "-i",
                    "sensors-under-test",
                    "-t",
                    "elsewhere",
                    "-m",
                    "x",
                ]
                await _run_tool("mosquitto_pub", *takeover)
                await wait_until(
                    lambda: driver.connection.failures > failures and driver.connection.ready, "reconnect"
                )
                await sim.gate("closed", name="north")
                marker = await next_message(driver)  # the same retained loop message: nothing new
                assert isinstance(marker.payload, GateSensor) and marker.payload.state == "closed"
                assert driver.retained["loop1"] == 2 and driver.accepted["loop1"] == 0
                assert driver.events.empty()

                # a sensor publishing with retain while we listen is live: the broker clears the flag
                await sim.publish_raw(topic, loop_payload(False, time.time()), retain=True)
                event = await next_message(driver)
                assert isinstance(event.payload, LoopDetector) and event.payload.occupied is False
                assert driver.known[topic].payload == event.payload and not driver.known[topic].retained

    run(scenario())


def test_stale_and_future_dated_messages_are_ignored_counted_and_on_health(
    mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    run(_stale_scenario(mosquitto, caplog))


async def _stale_scenario(mosquitto: Broker, caplog: pytest.LogCaptureFixture) -> None:
    now = 1_714_521_600.0  # the driver's wall clock, fixed: ages are exact
    cfg = config(mosquitto.port).model_copy(update={"max_age_s": 5.0, "max_ahead_s": 2.0})
    loop_topic, gate_topic, plate_topic = (
        f"{PREFIX}/loop/loop1",
        f"{PREFIX}/gate/north/state",
        f"{PREFIX}/plate/in-1",
    )
    plates = iter(range(1000))

    def plate() -> bytes:  # each a message of its own: a later ts than the one before
        ts = now - 1 + next(plates) / 1000
        return json.dumps({"plate": "粤B12345", "confidence": 0.9, "lane": "in-1", "ts": ts}).encode()

    async with (
        MqttSensorsDriver("park-mqtt", cfg, wall_clock=lambda: now) as driver,
        MqttSensorSim(port=mosquitto.port) as sim,
    ):
        await driver.supervisor.wait_for(State.UP, WAIT)
        with caplog.at_level(logging.WARNING, logger="devices.drivers.mqtt_sensors"):
            for age in (30.0, 20.0, 12.3):  # e.g. queued at the broker while the agent was away
                await sim.publish_raw(loop_topic, loop_payload(True, now - age))
            await sim.publish_raw(plate_topic, plate())  # fresh: the marker
            events = [await next_message(driver) for _ in range(4)]
        # each stale one was the newest state of its topic: passed on, but not live (no trigger)
        assert [(e.device, e.live) for e in events] == [("loop1", False)] * 3 + [("plates", True)]
        assert driver.stale == {"gates": 0, "loop1": 3, "plates": 0}
        assert driver.accepted == {"gates": 0, "loop1": 0, "plates": 1}
        health = driver.supervisor.health
        assert health.state == State.DEGRADED
        assert health.reason == f"stale sensor message on {loop_topic!r} (30.0 s old)"  # first of the burst
        logged = [r for r in caplog.records if r.getMessage() == "stale sensor message ignored"]
        assert len(logged) == 1 and logged[0].sensor == "loop1"  # type: ignore[attr-defined]  # once per burst

        # a gate sensor whose clock runs 30 s ahead: its messages are no trigger either
        await sim.publish_raw(gate_topic, json.dumps({"state": "closed", "ts": now + 30}).encode())
        await sim.publish_raw(plate_topic, plate())
        assert (await next_message(driver)).device == "plates"
        assert driver.stale["gates"] == 1
        health = driver.supervisor.health
        assert (health.state, health.reason) == (
            State.DEGRADED,
            f"sensor message on {gate_topic!r} dated 30.0 s ahead of this clock",
        )

        # each sensor is cleared by a fresh message of its own
        await sim.publish_raw(loop_topic, loop_payload(False, now - 1))
        assert (await next_message(driver)).device == "loop1"
        assert driver.supervisor.health.state == State.DEGRADED
        await sim.publish_raw(gate_topic, json.dumps({"state": "open", "ts": now}).encode())
        assert (await next_message(driver)).device == "gates"
        # UP once none is stale and the quiet spell of DEGRADED's hysteresis has passed
        assert (await driver.supervisor.wait_for(State.UP, WAIT)).state == State.UP
        assert driver.events.empty()


def test_a_resent_or_out_of_order_message_is_dropped_counted_and_logged_once(
    mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside finding (s3): a QoS 1 re-send of "occupied" (DUP: a PUBACK lost, the broker forwards it
    as new) that arrived after the loop's later "free" was made an event: a phantom arrival, or a
    TAILGATING that closed the barrier on a cleared vehicle. The broker forwards a DUP as an ordinary
    message, so publishing the same bytes again is what the driver sees."""

    async def scenario() -> None:
        async with (
            MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver,
            MqttSensorSim(port=mosquitto.port) as sim,
        ):
            await driver.supervisor.wait_for(State.UP, WAIT)
            topic, t0 = sim.loop_topic(), time.time()
            occupied, free = loop_payload(True, t0), loop_payload(False, t0 + 0.2)
            with caplog.at_level(logging.WARNING, logger="devices.drivers.mqtt_sensors"):
                await sim.publish_raw(topic, occupied)
                await sim.publish_raw(topic, free)
                await sim.publish_raw(topic, occupied)  # the re-send, after the message that followed it
                await sim.publish_raw(topic, free)  # and a re-send of the newest: the same ts
                await sim.publish_raw(topic, loop_payload(True, t0 - 1))  # an older one, replayed
                await sim.gate("open", name="north")  # the marker
                events = [await next_message(driver) for _ in range(3)]
            assert [(e.device, getattr(e.payload, "occupied", None)) for e in events] == [
                ("loop1", True),
                ("loop1", False),
                ("gates", None),
            ]
            assert driver.out_of_order["loop1"] == 2 and driver.duplicates["loop1"] == 1
            assert driver.accepted["loop1"] == 2
            assert driver.known[topic].payload.occupied is False  # the newest stays what is known
            assert driver.details()["sensors"]["loop1"]["out_of_order"] == 2
            assert driver.events.empty()
        logged = [r for r in caplog.records if "sensor message ignored" in r.getMessage()]
        assert [r.getMessage() for r in logged] == ["out-of-order sensor message ignored"]  # once per burst

    run(scenario())


def test_a_stale_sensor_stays_degraded_until_it_sends_a_timely_message(mosquitto: Broker) -> None:
    """Outside finding (s5 b): DEGRADED's quiet timer brought a stale sensor UP again about 3 s later
    on its own, though it had sent nothing timely. Here the quiet spell is shortened so that "not
    UP" is observed over many of them, within a bounded wait."""

    async def scenario() -> None:
        async with (
            MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver,
            MqttSensorSim(port=mosquitto.port) as sim,
        ):
            driver.supervisor._recover_after_s = 0.05  # the quiet spell a fault needs, made short
            await driver.supervisor.wait_for(State.UP, WAIT)
            topic = sim.loop_topic()
            await sim.publish_raw(topic, loop_payload(False, time.time() - 30))
            assert (await driver.supervisor.wait_for(State.DEGRADED, WAIT)).reason.startswith("stale")
            await sim.gate("open", name="north")  # other sensors' good messages change nothing
            with pytest.raises(TimeoutError):
                await driver.supervisor.wait_for(State.UP, 0.5)
            assert driver.details()["conditions"] == [driver.supervisor.health.reason]
            await sim.publish_raw(topic, loop_payload(False, time.time()))
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert driver.details()["conditions"] == []

    run(scenario())


def test_log_lines_and_health_carry_a_clipped_topic(
    mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside finding (s11): a malformed message on a 60,000-character topic gave a 60,339-character
    log line."""

    async def scenario() -> None:
        cfg = MqttSensorsConfig(
            broker=BrokerConfig(port=mosquitto.port),
            sensors=[{"name": "loops", "type": "loop", "topic": f"{PREFIX}/loop/+"}],
        )
        async with (
            MqttSensorsDriver("park-mqtt", cfg) as driver,
            MqttSensorSim(port=mosquitto.port) as sim,
        ):
            await driver.supervisor.wait_for(State.UP, WAIT)
            long_topic = f"{PREFIX}/loop/" + "L" * 60_000
            with caplog.at_level(logging.WARNING, logger="devices.drivers.mqtt_sensors"):
                await sim.publish_raw(long_topic, b"not json")
                await sim.publish_raw(f"{PREFIX}/loop/" + "S" * 60_000, loop_payload(True, time.time() - 60))
                await sim.loop(True)
                assert (await next_message(driver)).live is False  # the stale one: state only
                assert (await next_message(driver)).live is True
            assert driver.rejected["loops"] == 1 and driver.stale["loops"] == 1
            assert len(driver.supervisor.health.reason) < 300
        lines = [r for r in caplog.records if r.getMessage().endswith(("rejected", "ignored"))]
        assert [r.getMessage() for r in lines] == ["sensor payload rejected", "stale sensor message ignored"]
        for record in lines:
            assert record.topic == long_topic[:200] + "…" or record.topic.endswith("S" * 100 + "…")  # type: ignore[attr-defined]
            assert len(record.topic) == 201  # type: ignore[attr-defined]
            assert len(str(record.__dict__)) < 2000

    run(scenario())


# --- broker outages ----------------------------------------------------------------------------------
def test_broker_restart_on_the_same_port_gives_down_then_up_and_resubscribed(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with MqttSensorsDriver("park-mqtt", config(mosquitto.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            mosquitto.stop()
            down = await driver.supervisor.wait_for(State.DOWN, WAIT)
            assert "lost" in down.reason
            assert not driver.connection.ready
            again = start_broker(tmp_path, port=mosquitto.port)
            try:
                await driver.supervisor.wait_for(State.UP, WAIT)  # by itself: nobody restarts the driver
                async with MqttSensorSim(port=again.port) as sim:
                    await sim.loop(True)
                    event = await next_message(driver)
                assert isinstance(event.payload, LoopDetector) and event.payload.occupied
            finally:
                again.stop()

    run(scenario())


def test_a_broker_that_is_not_there_is_down_with_the_cause(tmp_path: Path) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with MqttSensorsDriver("park-mqtt", config(port)) as driver:
            down = await driver.supervisor.wait_for(State.DOWN, WAIT)
            assert f"cannot connect to mqtt://127.0.0.1:{port}" in down.reason
            assert "ConnectionRefusedError" in down.reason
            broker = start_broker(tmp_path, port=port)
            try:
                await driver.supervisor.wait_for(State.UP, WAIT)
            finally:
                broker.stop()

    run(scenario())


def test_publish_while_the_broker_is_down_times_out_with_a_device_error(mosquitto: Broker) -> None:
    async def scenario() -> None:
        async with MqttConnection(BrokerConfig(port=mosquitto.port)) as conn:
            await conn.wait_ready(WAIT)
            mosquitto.stop()
            await conn.wait_lost()
            with pytest.raises(DeviceError, match="not acknowledged"):
                await conn.publish("x/y", b"1", qos=1, timeout=0.3)
            with pytest.raises(DeviceError, match="publish to 'x/y' failed"):
                await conn.publish("x/y", b"1", qos=0)

    run(scenario())


# --- credentials -------------------------------------------------------------------------------------
def test_username_and_password(tmp_path: Path) -> None:
    async def scenario(broker: Broker) -> None:
        good = config(broker.port, username="gate", password="s3cret")
        bad = config(broker.port, username="gate", password="wrong")
        anonymous = config(broker.port)
        async with (
            MqttSensorsDriver("good", good) as ok,
            MqttSensorsDriver("bad", bad) as refused,
            MqttSensorsDriver("anon", anonymous) as anon,
        ):
            await ok.supervisor.wait_for(State.UP, WAIT)
            for driver in (refused, anon):
                down = await driver.supervisor.wait_for(State.DOWN, WAIT)
                assert "refused the connection: Not authorized" in down.reason
            async with MqttSensorSim(port=broker.port, username="gate", password="s3cret") as sim:
                await sim.gate("opening")
                event = await next_message(ok)
            assert isinstance(event.payload, GateSensor)
            assert refused.supervisor.health.state == State.DOWN  # it keeps retrying, never UP

    broker = start_broker(tmp_path, username="gate", password="s3cret")
    try:
        run(scenario(broker))
    finally:
        broker.stop()


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="'#' must be a whole last level"):
        MqttSensorsConfig(broker=BrokerConfig(), sensors=[{"name": "a", "type": "loop", "topic": "a/#/b"}])
    with pytest.raises(ValidationError, match="unique"):
        MqttSensorsConfig(broker=BrokerConfig(), sensors=[SENSORS[1], SENSORS[1]])
    for bad in ({"max_age_s": 0}, {"max_age_s": -1}, {"max_ahead_s": -0.5}, {"max_age_s": float("inf")}):
        with pytest.raises(ValidationError, match="max_a"):
            MqttSensorsConfig(broker=BrokerConfig(), sensors=SENSORS, **bad)
    defaults = MqttSensorsConfig(broker=BrokerConfig(), sensors=SENSORS)
    assert (defaults.max_age_s, defaults.max_ahead_s) == (5.0, 2.0)
    with pytest.raises(ValidationError, match="password given without username"):
        BrokerConfig(password="x")
    with pytest.raises(ValidationError, match="both cert and key"):
        TlsConfig(cert=Path("c.pem"))
    assert BrokerConfig(tls=TlsConfig()).effective_port == 8883


def test_the_age_limits_are_edge_config_keys(tmp_path: Path) -> None:
    """`[devices.<name>]` of driver mqtt-sensors takes max_age_s / max_ahead_s, checked with the key named."""
    deploy = Path(__file__).resolve().parents[3] / "deploy" / "edge.toml"
    settings = load_settings(EdgeSettings, deploy)
    sensors = settings.devices["sensors"]
    assert isinstance(sensors, MqttSensorsConfig) and (sensors.max_age_s, sensors.max_ahead_s) == (5.0, 2.0)
    bad = tmp_path / "edge.toml"
    bad.write_text(deploy.read_text().replace("max_age_s = 5.0", "max_age_s = 0"))
    with pytest.raises(ConfigError, match=r"devices\.sensors\.max_age_s: Input should be greater than 0"):
        load_settings(EdgeSettings, bad)


# --- TLS ---------------------------------------------------------------------------------------------
def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(path: Path, obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            obj.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path, Path]]:
    """Mosquitto with only a TLS listener, its certificate signed by a fresh CA; also an unrelated CA."""
    ca_key, ca_cert = _ca("Bondgate test CA")
    _, other_ca = _ca("Someone else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = _pem(tmp_path / "ca.pem", ca_cert)
    other_path = _pem(tmp_path / "other-ca.pem", other_ca)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "tls.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {ca_path}\ncertfile {_pem(tmp_path / 'server.pem', cert)}\n"
        f"keyfile {_pem(tmp_path / 'server.key', key)}\n"
        "allow_anonymous true\nuser root\npersistence false\n"
        f"log_dest file {tmp_path / 'tls.log'}\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    f"TLS mosquitto did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            time.sleep(0.02)
    broker = Broker("127.0.0.1", port, None, None, proc, tmp_path / "tls.log")
    try:
        yield broker, ca_path, other_path
    finally:
        broker.stop()


def test_tls_with_the_right_ca_connects_and_a_wrong_ca_is_down(tls_broker: tuple[Broker, Path, Path]) -> None:
    broker, ca, other_ca = tls_broker

    async def scenario() -> None:
        good = config(broker.port, tls=TlsConfig(ca=ca))
        wrong = config(broker.port, tls=TlsConfig(ca=other_ca))
        async with MqttSensorsDriver("tls", good) as driver, MqttSensorsDriver("wrong-ca", wrong) as refused:
            await driver.supervisor.wait_for(State.UP, WAIT)
            async with MqttConnection(BrokerConfig(port=broker.port, tls=TlsConfig(ca=ca))) as peer:
                await peer.wait_ready(WAIT)
                await peer.publish(f"{PREFIX}/loop/loop1", b'{"occupied": true, "ts": %.3f}' % time.time())
            event = await next_message(driver)
            assert isinstance(event.payload, LoopDetector)
            down = await refused.supervisor.wait_for(State.DOWN, WAIT)
            assert "CERTIFICATE_VERIFY_FAILED" in down.reason
            assert driver.connection.config.address.startswith("mqtts://")

    run(scenario())


def test_tls_never_falls_back_to_plaintext(mosquitto: Broker, tmp_path: Path) -> None:
    """A plaintext broker answering where TLS is configured, and TLS files that are not there."""
    _, ca_cert = _ca("CA")
    ca = _pem(tmp_path / "ca.pem", ca_cert)

    async def scenario() -> None:
        plaintext = config(mosquitto.port, tls=TlsConfig(ca=ca))
        missing = config(mosquitto.port, tls=TlsConfig(ca=tmp_path / "nope.pem"))
        async with MqttSensorsDriver("plain", plaintext) as a, MqttSensorsDriver("missing", missing) as b:
            down = await a.supervisor.wait_for(State.DOWN, WAIT)
            assert "cannot connect to mqtts://" in down.reason
            down = await b.supervisor.wait_for(State.DOWN, WAIT)
            assert down.reason == f"MqttSetupError: TLS CA file {tmp_path / 'nope.pem'} not found"
            with pytest.raises(MqttSetupError):
                await MqttConnection(missing.broker).start()
            await asyncio.sleep(0.5)  # give a fallback every chance to happen
            assert a.supervisor.health.state == b.supervisor.health.state == State.DOWN
            assert not a.connection.ready and not b.connection.started

    run(scenario())


# --- helpers -----------------------------------------------------------------------------------------
async def _run_tool(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()
    return out.decode()
