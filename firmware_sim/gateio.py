"""A gate I/O module on Modbus TCP (or RTU): pymodbus's own server with the SimDevice/SimData model,
laid out as an ioLogik E1212 or an ADAM-6050, wired like a gate.

The wiring: photo-eyes and a loop detector on DIs, barrier position switches on DIs, and coils for
the barrier, a diverter and a stack light (`gate_map()`). Writing the barrier coil moves the barrier:
both position switches drop at once, and after `barrier_delay_s` the target switch closes (0 = at
once, for tests). `set_input()` plays a photo-eye or a loop.

Faults, for the driver's tests: `stop()`/`start()` (the module goes away and comes back on the same
port, state kept), `mute()` (connected but never answering, like a hung module), `fail()` (answer
every read and/or write with an exception code) and `stick_output()` (a coil that ignores writes,
like a welded relay or an output forced from the module's web page: the driver's read-back must
catch it).

The state lives here, in plain lists, and is pushed into the running server with
`server.async_setValues`; a restart builds a fresh SimDevice from it (pymodbus rebuilds its
registers from SimData on every server).

`VehicleLaneSim` is the same module wired as a vehicle gate (卡口) lane, with a barrier that
moves and a safety loop it will not close onto (`vehicle_lane_map()` has the address map).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Annotated, Literal

import typer
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.protocols.io_profiles import IOMap, ModuleProfile, OutputPoint, profile_named

log = logging.getLogger(__name__)

GATE_INPUTS = {"photo_eye_1": 0, "photo_eye_2": 1, "loop": 2, "barrier_open": 3, "barrier_closed": 4}
GATE_OUTPUTS = {
    "barrier": {"channel": 0, "safe": False},  # on = open
    "diverter_left": {"channel": 1, "safe": False},  # both off = hold
    "diverter_right": {"channel": 2, "safe": False},
    "light_red": {"channel": 3, "safe": True},
    "light_amber": {"channel": 4, "safe": False},
    "light_green": {"channel": 5, "safe": False},
}

READ_FUNCTIONS = {1, 2, 3, 4}
WRITE_FUNCTIONS = {5, 6, 15, 16}


def gate_map(profile: str | ModuleProfile = "e1212") -> IOMap:
    """The simulator's wiring (fits both built-in profiles: ADAM-6050 has exactly six DOs)."""
    return IOMap(profile=profile, inputs=GATE_INPUTS, outputs=GATE_OUTPUTS)


class GateIOSim:
    def __init__(
        self,
        io: IOMap | str = "e1212",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 0,  # 0 answers every unit id
        barrier_delay_s: float = 0.0,
        barrier: tuple[str, str, str] = ("barrier", "barrier_open", "barrier_closed"),
        rtu_port: str | None = None,  # serve RTU on this serial device instead of TCP
        watchdog_s: float | None = None,  # communication watchdog: outputs safe after this long unpolled
    ) -> None:
        self.io = gate_map(io) if isinstance(io, str) else io
        self.profile = self.io.profile
        self.host, self.port, self.device_id = host, port, device_id
        self.rtu_port = rtu_port
        self.barrier_delay_s = barrier_delay_s
        self._barrier_out, self._barrier_open_in, self._barrier_closed_in = barrier
        self._di = [False] * self.profile.di_count  # raw electrical state
        self._do = [False] * self.profile.do_count
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._internal = False
        self._muted = False
        self._fault: tuple[ExcCodes, set[int]] | None = None
        self._stuck: dict[int, bool] = {}
        self._barrier_task: asyncio.Task[None] | None = None
        self.coil_writes = 0
        self.watchdog_s = watchdog_s
        self.watchdog_trips = 0  # times the watchdog drove the outputs to their safe values
        self._last_request = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        if self._barrier_closed_in in self.io.inputs:
            self._set_raw(self._barrier_closed_in, True)

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        device = SimDevice(id=self.device_id, simdata=self._simdata(), action=self._action)
        if self.rtu_port is not None:
            self._server = ModbusSerialServer(
                device, framer=FramerType.RTU, port=self.rtu_port, trace_packet=self._trace
            )
        else:
            self._server = ModbusTcpServer(device, address=(self.host, self.port), trace_packet=self._trace)
        await self._server.serve_forever(background=True)
        self._last_request = asyncio.get_running_loop().time()
        if self.watchdog_s is not None and self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(self.watchdog_s))
        if self.rtu_port is None:
            self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]  # pymodbus types transport as BaseTransport
        log.info("gate I/O simulator serving", extra={"profile": self.profile.name, "port": self.port})

    async def stop(self) -> None:
        """The module goes away: listener and every connection closed (state kept for start())."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def close(self) -> None:
        if self._barrier_task is not None:
            self._barrier_task.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        await self.stop()

    async def _watch(self, timeout: float) -> None:
        """The module's communication watchdog (Moxa "Communication Watchdog" / ADAM "safety value"):
        no request for `timeout` seconds while an output is away from its safe value drives every
        output to its safe value, as the README tells operators to configure real modules."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(timeout / 4)
            if loop.time() - self._last_request <= timeout:
                continue
            unsafe = [(n, p) for n, p in self.io.outputs.items() if self._do[p.channel] != p.safe]
            if not unsafe:
                continue
            self.watchdog_trips += 1
            log.warning("gate I/O simulator: communication watchdog, outputs safe", extra={"port": self.port})
            await self._outputs_safe(unsafe)

    async def _outputs_safe(self, points: list[tuple[str, OutputPoint]]) -> None:
        barrier = self.io.outputs.get(self._barrier_out)
        for _name, point in points:
            self._do[point.channel] = point.safe
            if self._server is not None:
                self._internal = True
                try:
                    await self._server.async_setValues(
                        self.device_id, 1, self.profile.do_address + point.channel, [point.safe]
                    )
                finally:
                    self._internal = False
            if barrier is not None and point.channel == barrier.channel:
                await self._command_barrier(point.safe)

    async def __aenter__(self) -> GateIOSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _simdata(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        p = self.profile
        coils = [SimData(p.do_address, values=list(self._do), datatype=DataType.BITS)]
        inputs = [SimData(p.di_address, values=list(self._di), datatype=DataType.BITS)]
        holding = [SimData(0, datatype=DataType.INVALID)]
        if p.di_word_register is not None:
            holding = [SimData(p.di_word_register, values=self._di_word(), datatype=DataType.REGISTERS)]
        return coils, inputs, holding, [SimData(0, datatype=DataType.INVALID)]

    # --- the plant -----------------------------------------------------------------------------------
    def input(self, name: str) -> bool:
        point = self.io.inputs[name]
        return self._di[point.channel] != point.invert

    def output(self, name: str) -> bool:
        return self._do[self.io.outputs[name].channel]

    async def set_input(self, name: str, value: bool) -> None:
        """Set a point as the driver should report it (inversion applied here)."""
        point = self.io.inputs[name]
        await self._push_di(point.channel, value != point.invert)

    def _set_raw(self, name: str, value: bool) -> None:
        point = self.io.inputs[name]
        self._di[point.channel] = value != point.invert

    def _di_word(self) -> int:
        return sum(1 << i for i, bit in enumerate(self._di[:16]) if bit)

    async def _push_di(self, channel: int, raw: bool) -> None:
        self._di[channel] = raw
        if self._server is None:
            return
        self._internal = True
        try:
            await self._server.async_setValues(self.device_id, 2, self.profile.di(channel), [raw])
            if self.profile.di_word_register is not None:
                await self._server.async_setValues(
                    self.device_id, 3, self.profile.di_word_register, [self._di_word()]
                )
        finally:
            self._internal = False

    async def _move_barrier(self, open_: bool) -> None:
        names = {True: self._barrier_open_in, False: self._barrier_closed_in}
        if self.barrier_delay_s > 0:
            for name in names.values():
                if name in self.io.inputs:
                    await self.set_input(name, False)
            await asyncio.sleep(self.barrier_delay_s)
        for state, name in names.items():
            if name in self.io.inputs:
                await self.set_input(name, state == open_)

    # --- faults --------------------------------------------------------------------------------------
    def fail(
        self, code: ExcCodes | None, *, on: Literal["read", "write", "all", "read_coils"] = "all"
    ) -> None:
        """Answer reads and/or writes (or only coil reads: a driver's read-back) with an exception
        code; `fail(None)` stops."""
        functions = {
            "read": READ_FUNCTIONS,
            "write": WRITE_FUNCTIONS,
            "all": READ_FUNCTIONS | WRITE_FUNCTIONS,
            "read_coils": {1},
        }
        self._fault = None if code is None else (code, functions[on])

    def mute(self, on: bool = True) -> None:
        """Keep the connection, send no answers: the driver sees timeouts."""
        self._muted = on

    def stick_output(self, name: str, value: bool | None) -> None:
        """The coil stays at `value` whatever is written (None frees it)."""
        channel = self.io.outputs[name].channel
        if value is None:
            self._stuck.pop(channel, None)
        else:
            self._stuck[channel] = value

    # --- pymodbus hooks ------------------------------------------------------------------------------
    def _trace(self, sending: bool, data: bytes) -> bytes:
        return b"" if sending and self._muted else data

    async def _action(
        self,
        function: int,
        _start: int,
        address: int,
        _count: int,
        _registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self._internal:
            return None
        self._last_request = asyncio.get_running_loop().time()
        is_write = function in WRITE_FUNCTIONS and values is not None
        if self._fault is not None:
            code, functions = self._fault
            if function in functions and (is_write or function in READ_FUNCTIONS):
                return code
        if function in (5, 15) and values is not None:
            return await self._coils_written(address, values)
        return None

    async def _coils_written(self, address: int, values: list[int] | list[bool]) -> ExcCodes | None:
        p = self.profile
        first = address - p.do_address
        if first < 0 or first + len(values) > p.do_count:
            return ExcCodes.ILLEGAL_ADDRESS
        self.coil_writes += 1
        barrier = self.io.outputs.get(self._barrier_out)
        for i in range(len(values)):
            channel = first + i
            values[i] = self._stuck.get(channel, bool(values[i]))  # inline: what the datastore stores
            changed = self._do[channel] != values[i]
            self._do[channel] = bool(values[i])
            if barrier is not None and channel == barrier.channel and changed:
                await self._command_barrier(bool(values[i]))
        return None

    async def _command_barrier(self, open_: bool) -> None:
        if self._barrier_task is not None:
            self._barrier_task.cancel()
            self._barrier_task = None
        if self.barrier_delay_s <= 0:
            self._internal = True  # already inside a request: push without re-entering faults
            try:
                await self._move_barrier(open_)
            finally:
                self._internal = False
        else:
            self._barrier_task = asyncio.create_task(self._move_barrier(open_))


# --- a vehicle gate lane ---------------------------------------------------------------------------

# The lane runs entry → weighbridge platform → barrier → exit. Inputs are True when something is
# there: a loop occupied, a beam interrupted, a limit switch made.
LANE_INPUTS: dict[str, int] = {
    "entry_loop": 0,  # loop before the platform: a vehicle arrives
    "platform_back": 1,  # beam across the platform's entry end (behind a parked vehicle)
    "platform_front": 2,  # beam across the platform's exit end (in front of a parked vehicle)
    "safety_loop": 3,  # loop under the barrier arm: never close onto it
    "exit_loop": 4,  # loop past the barrier: the vehicle has left
    "barrier_open": 5,  # limit switch: the arm is fully up
    "barrier_closed": 6,  # limit switch: the arm is fully down
}
LANE_OUTPUTS: dict[str, Mapping[str, object]] = {
    "barrier": {"channel": 0, "safe": False},  # the barrier open command, held: on opens, off closes
    "light_red": {"channel": 1, "safe": True},  # the lane's traffic light
    "light_green": {"channel": 2, "safe": False},
}

BarrierState = Literal["closed", "opening", "open", "closing", "stuck"]


def vehicle_lane_map(profile: str | ModuleProfile = "e1212") -> IOMap:
    """A vehicle gate lane's wiring: `LANE_INPUTS` on DI0–6, `LANE_OUTPUTS` on DO0–2 (fits the
    ioLogik E1212, DI at 0–15 and coils at 0–7, and the ADAM-6050, DI at 0–11 and coils at 16–21).

    Whole vehicle on the weighbridge: both platform beams clear (False) while the bridge reads a
    load and the back beam has been interrupted and has cleared since the platform was last empty;
    either beam interrupted means part of the vehicle is off the platform (or still driving on)."""
    return IOMap(profile=profile, inputs=LANE_INPUTS, outputs=LANE_OUTPUTS)


class VehicleLaneSim(GateIOSim):
    """A vehicle gate lane on a gate I/O module: loops and platform beams (set by the test or the
    truck scenario, `set_input`) and a barrier that moves by itself once commanded.

    The barrier: the `barrier` coil on starts it opening — both limit switches drop as the arm
    leaves its rest — and it is open (the open switch made) `travel_s` later; the coil off closes it
    the same way. Like a real barrier controller, and whatever the coil says, it does not lower the
    arm while the safety loop is occupied: a close is held (counted in `refused_closes`) until the
    loop is clear, and an arm already closing when the loop becomes occupied goes back up (counted
    in `reversals`) and closes once the loop is clear, if the command is still off. An arm at rest
    closed stays closed when a vehicle stands in the loop (nothing opens it but the command).

    Faults: `jam(at)` — the arm stops at `at` (0 closed … 1 open) on its way up and never reaches
    open (`stuck`; it still closes, and `jam(None)` frees it); `fail_switch(name, value)` — a limit
    switch that reads `value` whatever the arm does (`None` repairs it). Plus the module's own
    (`stop`, `mute`, `fail`, `stick_output`).
    """

    def __init__(
        self,
        io: IOMap | str = "e1212",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 0,
        travel_s: float = 1.0,
        watchdog_s: float | None = None,
    ) -> None:
        super().__init__(
            vehicle_lane_map(io) if isinstance(io, str) else io,
            host=host,
            port=port,
            device_id=device_id,
            barrier_delay_s=travel_s,
            watchdog_s=watchdog_s,
        )
        self.travel_s = travel_s
        self._command = False
        self._position = 0.0  # 0 closed … 1 open, where the arm was when it last started or stopped
        self._target = 0.0
        self._since = 0.0  # loop time of `_position`
        self._motion: asyncio.Task[None] | None = None
        self._jam_at: float | None = None
        self._forced: dict[str, bool] = {}
        self._held_for_loop = False
        self._changed = asyncio.Event()
        self.refused_closes = 0  # closes held because the safety loop was occupied
        self.reversals = 0  # closing arms sent back up by the safety loop
        self.states: list[BarrierState] = ["closed"]  # every state the barrier went through

    # --- the barrier, as the test sees it ---------------------------------------------------------
    @property
    def barrier(self) -> BarrierState:
        return self.states[-1]

    @property
    def position(self) -> float:
        """0 closed … 1 open, now."""
        if self._motion is None:
            return self._position
        moved = (asyncio.get_running_loop().time() - self._since) / self.travel_s if self.travel_s else 1.0
        if self._target > self._position:
            return min(self._position + moved, self._target)
        return max(self._position - moved, self._target)

    async def wait_barrier(self, state: BarrierState, timeout: float) -> None:
        """Until the barrier is in `state` (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while self.barrier != state:
                changed = self._changed
                await changed.wait()

    def jam(self, at: float | None = 0.5) -> None:
        """The arm stops at `at` on its way up and never reaches open; None frees it."""
        self._jam_at = at

    async def fail_switch(self, name: Literal["barrier_open", "barrier_closed"], value: bool | None) -> None:
        """A limit switch reads `value` whatever the arm does (None: it works again)."""
        if value is None:
            self._forced.pop(name, None)
        else:
            self._forced[name] = value
        await self._switches()

    # --- the plant ----------------------------------------------------------------------------------
    async def set_input(self, name: str, value: bool) -> None:
        await super().set_input(name, value)
        if name == "safety_loop":
            await self._plan()

    async def _command_barrier(self, open_: bool) -> None:
        self._command = open_
        await self._plan()

    async def close(self) -> None:
        if self._motion is not None:
            self._motion.cancel()
            self._motion = None
        await super().close()

    async def _plan(self) -> None:
        """Where the arm must go now, from the command and the safety loop; start it moving."""
        position = self.position
        occupied = "safety_loop" in self.io.inputs and self.input("safety_loop")
        if self._command:
            target, self._held_for_loop = 1.0, False
        elif occupied and position > 0:  # never lower the arm onto a vehicle
            if self.barrier == "closing":
                self.reversals += 1
            elif not self._held_for_loop:
                self.refused_closes += 1
            target, self._held_for_loop = 1.0, True
        else:
            target, self._held_for_loop = 0.0, False
        if target == 1.0 and self._jam_at is not None and position <= self._jam_at:
            target = self._jam_at
        if self._motion is not None:
            self._motion.cancel()
            self._motion = None
        self._position, self._target = position, target
        self._since = asyncio.get_running_loop().time()
        if position == target:
            await self._settled()
            return
        self._state("opening" if target > position else "closing")
        await self._switches()
        delay = abs(target - position) * self.travel_s
        self._motion = asyncio.get_running_loop().create_task(self._arrive(delay))

    async def _arrive(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._position, self._motion = self._target, None
        await self._settled()

    async def _settled(self) -> None:
        """The arm at rest at `_position`: closed, open, or stuck between."""
        if self._position >= 1.0:
            self._state("open")
        elif self._position <= 0.0:
            self._state("closed")
        else:
            self._state("stuck")
        await self._switches()

    def _state(self, state: BarrierState) -> None:
        if state != self.states[-1]:
            self.states.append(state)
            log.info("vehicle lane barrier", extra={"state": state, "port": self.port})
            self._changed.set()
            self._changed = asyncio.Event()

    async def _switches(self) -> None:
        """The limit switches for the barrier's state (a failed one reads what it is stuck at)."""
        made = {"barrier_open": self.barrier == "open", "barrier_closed": self.barrier == "closed"}
        for name, value in made.items():
            value = self._forced.get(name, value)
            if name in self.io.inputs and self.input(name) != value:
                await super().set_input(name, value)


async def serve(sim: GateIOSim) -> None:
    async with sim:
        print(f"gate I/O simulator ({sim.profile.name}) on {sim.host}:{sim.port}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def command(
    profile: Annotated[str, typer.Option(help="module layout: e1212 or adam6050")] = "e1212",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one)")] = 5020,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    do_address: Annotated[
        int | None, typer.Option(help="protocol address of DO0 (ADAM-6050: 16 or 17)")
    ] = None,
    barrier_delay: Annotated[float, typer.Option(help="seconds the barrier takes to move")] = 2.0,
    vehicle_lane: Annotated[
        bool, typer.Option(help="wire it as a vehicle gate lane: loops, platform beams, a safety loop")
    ] = False,
) -> None:
    """Serve a simulated gate I/O module until Ctrl-C."""
    layout = profile_named(profile)
    if do_address is not None:
        layout = ModuleProfile(**(layout.model_dump() | {"do_address": do_address}))
    sim: GateIOSim
    if vehicle_lane:
        sim = VehicleLaneSim(vehicle_lane_map(layout), host=host, port=port, travel_s=barrier_delay)
    else:
        sim = GateIOSim(gate_map(layout), host=host, port=port, barrier_delay_s=barrier_delay)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sim))
