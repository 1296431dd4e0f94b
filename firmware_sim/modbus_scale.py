"""A weight indicator on Modbus TCP: pymodbus's server (SimDevice/SimData) holding a `WeightMap`.

`set_load(kg)` rounds to the map's scale as an indicator's display division would and writes the
weight and status registers together; `set_motion()`, `set_overload()`, `set_underload()` flip the
status bits. The registers answer both holding and input reads (one shared block), so the map's
`table` can be either. Faults as for the gate I/O simulator: `stop()`/`start()`, `mute()`,
`fail(code)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Annotated

import typer
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.protocols.modbus_weight import GENERIC_INT32, WeightMap, encode

log = logging.getLogger(__name__)


class ModbusScaleSim:
    def __init__(
        self,
        weight_map: WeightMap = GENERIC_INT32,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 0,
    ) -> None:
        self.map = weight_map
        self.host, self.port, self.device_id = host, port, device_id
        self.kg: Decimal | None = Decimal(0)
        self.motion = self.overload = self.underload = self.net = False
        addresses = [weight_map.weight_address + i for i in range(weight_map.words)] + [
            weight_map.status_address
        ]
        self._first, self._last = min(addresses), max(addresses)
        self._server: ModbusTcpServer | None = None
        self._internal = False
        self._muted = False
        self._fault: ExcCodes | None = None

    def registers(self) -> list[int]:
        """The block from the lowest to the highest mapped register, as the indicator holds it."""
        regs = encode(
            self.map,
            self.kg,
            motion=self.motion,
            overload=self.overload,
            underload=self.underload,
            net=self.net and self.map.net_bit is not None,
            exact=False,
        )
        return [regs.get(a, 0) for a in range(self._first, self._last + 1)]

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None:
            return
        block = SimData(self._first, values=self.registers(), datatype=DataType.REGISTERS)
        device = SimDevice(id=self.device_id, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port), trace_packet=self._trace)
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]  # pymodbus types transport as BaseTransport
        log.info("weight indicator simulator serving", extra={"port": self.port})

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def __aenter__(self) -> ModbusScaleSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- the plant -----------------------------------------------------------------------------------
    async def set_load(self, kg: Decimal | str | int, *, motion: bool | None = None) -> None:
        self.kg = Decimal(kg)
        if motion is not None:
            self.motion = motion
        await self._push()

    async def set_motion(self, on: bool = True) -> None:
        self.motion = on
        await self._push()

    async def set_overload(self, on: bool = True) -> None:
        self.overload = on
        await self._push()

    async def set_underload(self, on: bool = True) -> None:
        self.underload = on
        await self._push()

    async def _push(self) -> None:
        values = self.registers()  # encode first: a weight the map cannot hold raises here
        if self._server is None:
            return
        self._internal = True
        try:
            await self._server.async_setValues(self.device_id, 3, self._first, values)
        finally:
            self._internal = False

    # --- faults --------------------------------------------------------------------------------------
    def fail(self, code: ExcCodes | None) -> None:
        self._fault = code

    def mute(self, on: bool = True) -> None:
        self._muted = on

    def _trace(self, sending: bool, data: bytes) -> bytes:
        return b"" if sending and self._muted else data

    async def _action(self, *_args: object) -> ExcCodes | None:
        return None if self._internal else self._fault


def command(
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one)")] = 5021,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    load: Annotated[str, typer.Option(help="initial load in kg")] = "0",
) -> None:
    """Serve a simulated Modbus weight indicator (generic INT32 map, grams) until Ctrl-C."""

    async def serve() -> None:
        async with ModbusScaleSim(host=host, port=port) as sim:
            await sim.set_load(load)
            print(f"weight indicator simulator on {sim.host}:{sim.port}, {sim.kg} kg", flush=True)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
