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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Literal

import typer
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.protocols.io_profiles import IOMap, ModuleProfile, profile_named

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
        await self.stop()

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
) -> None:
    """Serve a simulated gate I/O module until Ctrl-C."""
    layout = profile_named(profile)
    if do_address is not None:
        layout = ModuleProfile(**(layout.model_dump() | {"do_address": do_address}))
    sim = GateIOSim(gate_map(layout), host=host, port=port, barrier_delay_s=barrier_delay)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sim))
