"""One Modbus bus: a TCP endpoint or an RS-485 port, shared by every unit id on it.

A bus sends one request at a time (an asyncio.Lock around connect + request), because RS-485 is
half duplex and many TCP modules serve one request per connection anyway. pymodbus is asked for no
retries and no automatic reconnect: the device supervisor owns reconnecting and needs each failure
reported at once, not hidden behind three silent retries. Every failure becomes a `DeviceError`
naming the bus, unit, function and address:

- `ModbusExceptionResponse`: the device answered with an exception code (it is alive: DEGRADED),
- `ModbusTimeout`: no answer within `timeout` (on TCP the connection is also closed, since a
  module that stops answering on an open socket is usually gone; set `close_on_timeout=False` for
  a TCP→RS-485 gateway with several units behind it, where one dead unit must not drop the rest),
- `DeviceError`: cannot connect, or the connection dropped.

Each bus is independent: a dead module on one endpoint costs other buses nothing. Units sharing
an RS-485 line do share its time: a dead unit holds the line for one timeout per attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from devices.health import DeviceError

log = logging.getLogger(__name__)


class TcpEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tcp"] = "tcp"
    host: str
    port: int = Field(502, ge=1, le=65535)
    close_on_timeout: bool = True

    @property
    def key(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class RtuEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["rtu"] = "rtu"
    port: str  # /dev/ttyUSB0, a pty path
    baudrate: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def key(self) -> str:
        return f"rtu://{self.port}"


Endpoint = Annotated[TcpEndpoint | RtuEndpoint, Field(discriminator="kind")]

FUNCTION_NAMES = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
    5: "write coil",
    6: "write register",
    15: "write coils",
    16: "write registers",
}


class ModbusRequestError(DeviceError):
    """A request failed; says which one, so a log line is enough to find the wiring or map error."""

    def __init__(self, bus: str, device_id: int, function: int, address: int, detail: str) -> None:
        self.bus, self.device_id, self.function, self.address = bus, device_id, function, address
        name = FUNCTION_NAMES.get(function, f"function {function}")
        super().__init__(f"{bus} unit {device_id}: {name} at {address}: {detail}")


class ModbusExceptionResponse(ModbusRequestError):
    """The device answered, refusing the request (it is alive)."""

    def __init__(self, bus: str, device_id: int, function: int, address: int, code: int) -> None:
        self.code = code
        try:
            label = ExcCodes(code).name
        except ValueError:
            label = "UNKNOWN"
        super().__init__(bus, device_id, function, address, f"exception {code} {label}")


class ModbusTimeout(ModbusRequestError):
    """No answer in time."""


Call = Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[ModbusPDU]]


class ModbusBus:
    def __init__(self, endpoint: TcpEndpoint | RtuEndpoint, *, timeout: float = 0.25) -> None:
        self.endpoint = endpoint
        self.key = endpoint.key
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.requests = 0
        self.failures = 0
        self.connects = 0  # connections opened: a request that had to reconnect shows here

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        e = self.endpoint
        common = {"timeout": self.timeout, "retries": 0, "reconnect_delay": 0, "name": self.key}
        if isinstance(e, TcpEndpoint):
            return AsyncModbusTcpClient(e.host, port=e.port, **common)
        return AsyncModbusSerialClient(
            e.port,
            framer=FramerType.RTU,
            baudrate=e.baudrate,
            bytesize=e.bytesize,
            parity=e.parity,
            stopbits=e.stopbits,
            **common,
        )

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the connection if it is not open; DeviceError if it cannot be opened."""
        async with self._lock:
            await self._connect_locked()

    async def _connect_locked(self) -> None:
        if self.connected:
            return
        self._close_locked()
        self._client = self._new_client()
        try:
            async with asyncio.timeout(self.timeout * 2 + 0.5):  # pymodbus has its own; never hang
                ok = await self._client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            self._close_locked()
            raise DeviceError(f"{self.key}: cannot connect")
        self.connects += 1
        log.debug("modbus connected", extra={"bus": self.key})

    def _close_locked(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._close_locked()

    async def _request(self, device_id: int, function: int, address: int, call: Call) -> ModbusPDU:
        def fail(detail: str) -> ModbusRequestError:
            return ModbusRequestError(self.key, device_id, function, address, detail)

        async with self._lock:
            await self._connect_locked()
            client = self._client
            assert client is not None
            self.requests += 1
            try:
                async with asyncio.timeout(self.timeout * 2 + 0.5):
                    response = await call(client)
            except (ModbusIOException, TimeoutError) as exc:
                self.failures += 1
                if isinstance(self.endpoint, TcpEndpoint) and self.endpoint.close_on_timeout:
                    self._close_locked()
                raise ModbusTimeout(self.key, device_id, function, address, "no answer") from exc
            except ConnectionException as exc:
                self.failures += 1
                self._close_locked()
                raise fail("connection lost") from exc
            except ModbusException as exc:
                self.failures += 1
                raise fail(str(exc)) from exc
        if response.isError():
            self.failures += 1
            code = int(getattr(response, "exception_code", 0))
            raise ModbusExceptionResponse(self.key, device_id, function, address, code)
        if response.function_code != function:
            # RTU has no transaction id: a late answer to an earlier, timed-out request can arrive in
            # this request's place. Taking it would confirm a coil from a DI read.
            self.failures += 1
            raise ModbusRequestError(
                self.key, device_id, function, address, f"answer is for function {response.function_code}"
            )
        return response

    async def _logged(self, device_id: int, function: int, address: int, call: Call) -> ModbusPDU:
        """Log each failure at debug (the device's supervisor logs the state change once)."""
        try:
            return await self._request(device_id, function, address, call)
        except ModbusRequestError as exc:
            extra = {"bus": self.key, "device_id": device_id, "function": function, "address": address}
            log.debug("modbus request failed: %s", exc, extra=extra)
            raise

    async def _bits(self, device_id: int, function: int, address: int, count: int, call: Call) -> list[bool]:
        response = await self._logged(device_id, function, address, call)
        bits = list(response.bits[:count])  # pymodbus pads to whole bytes
        if len(bits) != count:
            raise ModbusRequestError(
                self.key, device_id, function, address, f"{len(bits)} bits, asked {count}"
            )
        return bits

    async def _registers(
        self, device_id: int, function: int, address: int, count: int, call: Call
    ) -> list[int]:
        response = await self._logged(device_id, function, address, call)
        registers = list(response.registers)
        if len(registers) != count:
            raise ModbusRequestError(
                self.key, device_id, function, address, f"{len(registers)} registers, asked {count}"
            )
        return registers

    # --- the requests drivers use ----------------------------------------------------------------
    async def read_coils(self, device_id: int, address: int, count: int = 1) -> list[bool]:
        return await self._bits(
            device_id, 1, address, count, lambda c: c.read_coils(address, count=count, device_id=device_id)
        )

    async def read_discrete_inputs(self, device_id: int, address: int, count: int = 1) -> list[bool]:
        return await self._bits(
            device_id,
            2,
            address,
            count,
            lambda c: c.read_discrete_inputs(address, count=count, device_id=device_id),
        )

    async def read_holding_registers(self, device_id: int, address: int, count: int = 1) -> list[int]:
        return await self._registers(
            device_id,
            3,
            address,
            count,
            lambda c: c.read_holding_registers(address, count=count, device_id=device_id),
        )

    async def read_input_registers(self, device_id: int, address: int, count: int = 1) -> list[int]:
        return await self._registers(
            device_id,
            4,
            address,
            count,
            lambda c: c.read_input_registers(address, count=count, device_id=device_id),
        )

    async def write_coil(self, device_id: int, address: int, value: bool) -> None:
        await self._logged(device_id, 5, address, lambda c: c.write_coil(address, value, device_id=device_id))


class BusPool:
    """One `ModbusBus` per endpoint, so drivers for units on the same line share its lock."""

    def __init__(self, *, timeout: float = 0.25) -> None:
        self._timeout = timeout
        self._buses: dict[str, ModbusBus] = {}

    def get(self, endpoint: TcpEndpoint | RtuEndpoint) -> ModbusBus:
        bus = self._buses.get(endpoint.key)
        if bus is None:
            bus = self._buses[endpoint.key] = ModbusBus(endpoint, timeout=self._timeout)
        return bus

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()
        self._buses.clear()
