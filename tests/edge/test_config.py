"""The shipped example configuration is valid; mistakes are reported with the key named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.config import EdgeSettings
from kernel.config import ConfigError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "edge.toml"


def test_the_example_config_loads() -> None:
    settings = load_settings(EdgeSettings, EXAMPLE)
    assert [s.name for s in settings.stations] == ["line-1", "bench-1", "gate-1"]
    assert settings.devices["io1"].io.outputs["barrier"].safe is False


def test_errors_name_the_key(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('scanner = "hand_scanner"', 'scanner = "hand_scaner"')
    text = text.replace("percent = 5", 'percent = "lots"')
    bad = tmp_path / "edge.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeSettings, bad)
    assert "tolerance.percent" in str(err.value)
    data = tomllib.loads(text.replace('percent = "lots"', "percent = 5"))
    bad.write_text(EXAMPLE.read_text().replace('scanner = "hand_scanner"', 'scanner = "hand_scaner"'))
    with pytest.raises(ConfigError, match=r"stations.1.scanner: no device 'hand_scaner'"):
        load_settings(EdgeSettings, bad)
    assert data["park_id"] == "HK-FTZ-1"


def load_example(tmp_path: Path, *replacements: tuple[str, str]) -> EdgeSettings:
    text = EXAMPLE.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return load_settings(EdgeSettings, path)


IO1_INPUTS = "(has photo_eye_1, photo_eye_2, loop, barrier_open, barrier_closed)"
GATE = 'trigger = { device = "io1", point = "loop" }'
SENSORS = """[devices.sensors]
driver = "mqtt-sensors"
broker = { host = "127.0.0.1", port = 1883 }
sensors = [{ name = "gate_loop", type = "loop", topic = "park/loop" },
           { name = "plate_cam", type = "plate", topic = "park/plate" }]

# --- stations"""


@pytest.mark.parametrize(
    ("replacements", "problem"),
    [
        (
            [('photo_eye = "photo_eye_1"', 'photo_eye = "photo_eye_9"')],
            f"stations.0.photo_eye: no input 'photo_eye_9' on device 'io1' {IO1_INPUTS}",
        ),
        (
            [('photo_eye = "photo_eye_1"', 'photo_eye = "diverter_left"')],
            "stations.0.photo_eye: 'diverter_left' on device 'io1' is an output, not an input",
        ),
        (
            [('release = "diverter_left"', 'release = "photo_eye_2"')],
            "stations.0.diverter.release: 'photo_eye_2' on device 'io1' is an input, not an output",
        ),
        (
            [('inspect = "diverter_right"', 'inspect = "diverter_rigth"')],
            "stations.0.diverter.inspect: no output 'diverter_rigth' on device 'io1'"
            " (has barrier, diverter_left, diverter_right)",
        ),
        (
            [('io = "io1"\nphoto_eye', 'io = "line_scanner"\nphoto_eye')],
            "stations.0.io: device 'line_scanner' is a scanner, not a gateio",
        ),
        (
            [('scale = "line_scale"', 'scale = "line_camera"')],
            "stations.0.scale: device 'line_camera' is a camera, not a scale or modbus-scale",
        ),
        (
            [(GATE, 'trigger = { device = "io1", point = "lop" }')],
            f"stations.2.trigger.point: no input 'lop' on device 'io1' {IO1_INPUTS}",
        ),
        (
            [(GATE, 'trigger = { device = "io1", point = "barrier" }')],
            "stations.2.trigger.point: 'barrier' on device 'io1' is an output, not an input",
        ),
        (
            [(GATE, 'trigger = { device = "gate_scanner", point = "loop" }')],
            "stations.2.trigger.device: device 'gate_scanner' is a scanner, not a gateio or mqtt-sensors",
        ),
        (
            [("# --- stations", SENSORS), (GATE, 'trigger = { device = "sensors", point = "gate_lop" }')],
            "stations.2.trigger.point: no sensor 'gate_lop' on device 'sensors' (has gate_loop, plate_cam)",
        ),
        (
            [("# --- stations", SENSORS), (GATE, 'trigger = { device = "sensors", point = "plate_cam" }')],
            "stations.2.trigger.point: sensor 'plate_cam' is a plate sensor;"
            " a trigger needs a loop or gate sensor",
        ),
        (
            [('barrier = "barrier"', 'barrier = "barier"')],
            "stations.2.barrier: no output 'barier' on device 'io1'"
            " (has barrier, diverter_left, diverter_right)",
        ),
        (
            [('barrier_open = "barrier_open"', 'barrier_open = "barrier"')],
            "stations.2.barrier_open: 'barrier' on device 'io1' is an output, not an input",
        ),
    ],
)
def test_io_points_are_checked_against_the_module(
    tmp_path: Path, replacements: list[tuple[str, str]], problem: str
) -> None:
    """A misnamed point (or one used the wrong way round, or on the wrong kind of device) would
    leave the station silently never deciding: it is refused at start, naming the key."""
    with pytest.raises(ConfigError) as err:
        load_example(tmp_path, *replacements)
    assert err.value.problems == [f"{tmp_path / 'edge.toml'}: {problem}"]


def test_a_gate_triggered_by_an_mqtt_loop_sensor_loads(tmp_path: Path) -> None:
    settings = load_example(
        tmp_path, ("# --- stations", SENSORS), (GATE, 'trigger = { device = "sensors", point = "gate_loop" }')
    )
    assert settings.stations[2].trigger.point == "gate_loop"  # type: ignore[union-attr]


def test_every_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_example(
            tmp_path,
            ('photo_eye = "photo_eye_1"', 'photo_eye = "photo_eye_9"'),
            ('kind = "manual"', 'kind = "bench"'),
            ('driver = "camera"', 'driver = "camra"'),
            ("percent = 5", 'percent = "lots"'),
        )
    where = tmp_path / "edge.toml"
    assert str(err.value).splitlines() == err.value.problems
    keys = sorted(line.removeprefix(f"{where}: ").split(":")[0] for line in err.value.problems)
    assert keys == ["devices.line_camera.driver", "stations.1.kind", "tolerance.percent"]


# --- the conveyor's tracking layout ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("replacements", "problem"),
    [
        (
            (('camera = "line_camera"\n# Where', 'camera = "line_camera"\nwindow_s = 0.5\n# Where'),),
            "window_s and deadline_s were replaced by [stations.tracking]",
        ),
        (
            (("dedupe_window_s = 0.0 ", "dedupe_window_s = 0.2 "),),
            "stations.0.scanner: device 'line_scanner' drops repeated codes (dedupe_window_s = 0.2)",
        ),
        (
            (('scanner = "gate_scanner"', 'scanner = "line_scanner"'),),
            "stations.0.scanner: device 'line_scanner' also serves stations.2 (gate-1)",
        ),
        (
            (("diverter = { from_m = 4.0, to_m = 4.6 }", "diverter = { from_m = 1.8, to_m = 2.0 }"),),
            "tracking.diverter: too close to the devices",
        ),
        (
            (("scale = { from_m = 0.2, to_m = 1.0 }", "# no platform"),),
            "tracking.scale: where the weighing platform is",
        ),
        (
            (("belt_speed_m_s = 1.5", "# no speed"),),
            "belt_speed_m_s is needed for positions in metres",
        ),
        (
            (("scanner = { from_m = 1.2, to_m = 1.75 }", "scanner = { from_m = 1.2, to_s = 1.75 }"),),
            "give from_m and to_m, or from_s and to_s",
        ),
        (
            (("scanner = { from_m = 1.2, to_m = 1.75 }", "scanner = { from_m = 1.75, to_m = 1.2 }"),),
            "to must be a number no smaller than from",
        ),
        (
            (('inspect = "diverter_right"', 'inspect = "diverter_left"'),),
            "stations.0.diverter.inspect: 'diverter_left' on device 'io1' is already"
            " stations.0.diverter.release",
        ),
        (
            (('barrier = "barrier"', 'barrier = "diverter_left"'),),
            "stations.2.barrier: 'diverter_left' on device 'io1' is already stations.0.diverter.release",
        ),
    ],
)
def test_a_conveyor_layout_that_cannot_track_is_refused(
    tmp_path: Path, replacements: tuple[tuple[str, str], ...], problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_example(tmp_path, *replacements)
    assert problem in str(err.value)


def test_the_example_line_becomes_windows_in_seconds() -> None:
    line = load_settings(EdgeSettings, EXAMPLE).stations[0]
    layout = line.tracking.layout()
    assert layout.scanner.start_s == pytest.approx(0.8) and layout.scanner.end_s == pytest.approx(1.75 / 1.5)
    assert layout.diverter is not None and layout.diverter.start_s == pytest.approx(4.0 / 1.5)
    assert layout.max_parcel_s == pytest.approx(1.0 / 1.5)
    assert layout.longest_decidable_s() > layout.max_parcel_s  # every parcel is decided in time


@pytest.mark.parametrize(
    ("replacements", "problem"),
    [
        ((('park_id = "HK-FTZ-1"', 'park_id = "HK-FTZ-1/x"'),), "park_id: String should match pattern"),
        ((('park_id = "HK-FTZ-1"', 'park_id = ""'),), "park_id: String should match pattern"),
        (
            (('token = "bg_xxxxxxxx_', 'token = "bg_xx\\nxxxxxx_'),),
            "central.token: String should match pattern",
        ),
        (
            (('token = "bg_xxxxxxxx_', 'token = "bg_xxxxxxxx_é'),),
            "central.token: String should match pattern",
        ),
        ((('url = "http://127.0.0.1:8600"', 'url = "http://127.0.0.1:99999"'),), "central.url"),
        ((('url = "http://127.0.0.1:8600"', 'url = "http://127.0.0.1:abc"'),), "central.url"),
        ((("heartbeat_s = 30", "heartbeat_s = 1e-9"),), "heartbeat_s: Input should be greater than"),
        ((("heartbeat_s = 30", "heartbeat_s = inf"),), "heartbeat_s"),
        ((("margin_s = 0.02", "margin_s = nan"),), "stations.0.tracking.margin_s"),
        ((('scale = "bench_scale"', 'scale = "bench_scale"\nweight_deadline_s = inf'),), "weight_deadline_s"),
    ],
)
def test_values_that_cannot_work_are_refused_at_start(
    tmp_path: Path, replacements: tuple[tuple[str, str], ...], problem: str
) -> None:
    """Found by an outside tester: each of these started, then never synced, never uploaded, stalled a
    station for ever or flooded the outbox."""
    with pytest.raises(ConfigError) as err:
        load_example(tmp_path, *replacements)
    assert problem in str(err.value)


# --- the gate's trigger (outside finding s9) ---------------------------------------------------
@pytest.mark.parametrize(
    ("value", "problem"),
    [("-0.1", "greater than or equal to 0"), ("11", "less than or equal to 10"), ("nan", "finite")],
)
def test_the_gate_free_debounce_is_checked(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"stations\.2\.free_debounce_s: .*{problem}"):
        load_example(tmp_path, (GATE, f"{GATE}\nfree_debounce_s = {value}"))
    assert load_example(tmp_path).stations[2].free_debounce_s == 0.3  # type: ignore[union-attr]


# --- MQTT: what a topic and a session need (outside findings s2, s6, s8) -------------------------
WILD = SENSORS.replace('topic = "park/loop"', 'topic = "park/loop/+"')


@pytest.mark.parametrize("topic", ["park/loop/+", "park/#", "+/loop"])
def test_a_gate_trigger_on_a_wildcard_topic_is_refused(tmp_path: Path, topic: str) -> None:
    """The gate keeps one free/occupied level for its trigger: a filter covering several loops mixed
    them (another loop's vehicle started a check, this loop's arrival went unseen)."""
    with pytest.raises(ConfigError) as err:
        load_example(
            tmp_path,
            ("# --- stations", SENSORS.replace('topic = "park/loop"', f'topic = "{topic}"')),
            (GATE, 'trigger = { device = "sensors", point = "gate_loop" }'),
        )
    assert err.value.problems == [
        f"{tmp_path / 'edge.toml'}: stations.2.trigger.point: sensor 'gate_loop' on device 'sensors'"
        f" subscribes to {topic!r}, a wildcard filter; a gate trigger must be one sensor on one topic"
        " (give this loop a sensor of its own with its full topic)"
    ]


def test_a_wildcard_sensor_that_triggers_nothing_is_fine(tmp_path: Path) -> None:
    settings = load_example(tmp_path, ("# --- stations", WILD))
    assert settings.devices["sensors"].sensors[0].topic == "park/loop/+"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["gate+scanner", "gate#1", "gate/scanner", "a" * 33, "gate\\u0000x", "é"])
def test_a_device_name_that_cannot_be_a_topic_level_is_refused(tmp_path: Path, name: str) -> None:
    """`[devices."gate+scanner"]` passed, then its health topic made paho raise and the publisher
    task died silently; a NUL made the broker drop the agent's connection over and over."""
    with pytest.raises(ConfigError) as err:
        load_example(
            tmp_path,
            ("[devices.gate_scanner]", f'[devices."{name}"]'),
            ('scanner = "gate_scanner"', f'scanner = "{name}"'),
        )
    shown = repr(name.replace("\\u0000", "\0"))  # TOML's escape, as Python reads it
    problem = f"devices.{shown[1:-1]}: device name {shown} is not 1-32 letters, digits, '_' or '-'"
    assert problem in str(err.value)


def test_a_topic_prefix_that_cannot_start_a_topic_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.topic_prefix: .*invalid topic 'bond\+gate'"):
        load_example(tmp_path, ("[mqtt.broker]", '[mqtt]\ntopic_prefix = "bond+gate"\n\n[mqtt.broker]'))


def test_the_agents_connections_may_not_share_a_client_id_on_one_broker(tmp_path: Path) -> None:
    """Same id for [mqtt.broker] and a sensors device's broker: each connection took the session from
    the other, for ever."""
    same = SENSORS.replace(
        'broker = { host = "127.0.0.1", port = 1883 }',
        'broker = { host = "localhost", port = 1883, client_id = "bondgate-gate1" }',
    )
    with pytest.raises(ConfigError) as err:
        load_example(
            tmp_path,
            ("# --- stations", same),
            ("[mqtt.broker]", '[mqtt.broker]\nclient_id = "bondgate-gate1"'),
        )
    assert err.value.problems == [
        f"{tmp_path / 'edge.toml'}: devices.sensors.broker.client_id: client id 'bondgate-gate1' is also"
        " mqtt.broker.client_id on the same broker (mqtt://localhost:1883): the two connections would"
        " take it from each other"
    ]
    # another broker (port), or ids of their own: fine
    other = same.replace("port = 1883, client_id", "port = 1884, client_id")
    mine = ("[mqtt.broker]", '[mqtt.broker]\nclient_id = "bondgate-gate1"')
    load_example(tmp_path, ("# --- stations", other), mine)
    load_example(tmp_path, ("# --- stations", same))
