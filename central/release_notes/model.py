"""The release note (核放单) as central takes it: SAS121's head, goods lines and related documents.

Field names are SAS121's own (camelCase, as customs' message and ronannnn/gx-customs-bridge's model
carry them), so a note exported from a customs client needs no renaming. JSON is
``{"head": {...}, "list": [...], "acmp": [...]}``; the XML form (release_notes/xml.py) is SAS121's
envelope around the same three parts.

Two checks happen here, before the store is touched: each field's own rule (pydantic), then the
rules between fields (`problems`): types 5 and 6 carry no binding type and no related documents, type
6 (empty vehicle) no goods; the weights add up (totalWt = vehicleWt + vehicleFrameWt + containerWt +
totalGrossWt, and the lines to the totals); a container number passes ISO 6346. What needs the
database (the inventories, the vehicle registry, duplicates) is release_notes/intake.py's.

Cross-border parcels: a note taking parcels out of the park lists their inventories as related
documents, `rtlBillTypecd` "CEB621" and `rtlBillNo` the invtNo. No public source gives a
`rltTbTypecd` code for a cross-border e-commerce inventory; "CEB621", the inventory's message type,
is Bondgate's. `sealNo` is Bondgate's too (SAS121 has no seal field): the electronic seal ids the
gate must read on this vehicle, two at most, joined by "|" as the customs gate's collect message
joins them.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from kernel import containers
from kernel.plates import normalise_plate

__all__ = [
    "INVENTORY_DOC_TYPE",
    "Acmp",
    "BindType",
    "Head",
    "Line",
    "NoteIn",
    "NoteType",
    "problems",
]

INVENTORY_DOC_TYPE: Final = "CEB621"
MAX_LINES: Final = 1000
MAX_RELATED: Final = 5000  # parcels on one vehicle: a 40 ft box of small parcels holds a few thousand


class NoteType(StrEnum):
    """passportTypecd."""

    AREA_FIRST = "1"  # 先入区后报关: goods enter the area before the declaration
    INTEGRATED = "2"  # 一线一体化进出区
    SECOND_LINE = "3"  # 二线进出区: between the area and the domestic market (parcels leaving)
    NON_DECLARED = "4"  # 非报关进出区
    GATE_REGISTERED = "5"  # 卡口登记货物
    EMPTY_VEHICLE = "6"  # 空车进出区


class BindType(StrEnum):
    """bindTypecd: how vehicles and declarations relate."""

    ONE_VEHICLE_MANY = "1"  # one vehicle, several declarations
    ONE_TO_ONE = "2"
    ONE_DECLARATION_MANY_VEHICLES = "3"


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    value = _strip(value)
    return None if value == "" else value


Text = Annotated[str, BeforeValidator(_strip)]
OptText = Annotated[Annotated[str, Field(max_length=512)] | None, BeforeValidator(_blank_is_none)]
Opt10 = Annotated[Annotated[str, Field(max_length=10)] | None, BeforeValidator(_blank_is_none)]
Opt18 = Annotated[Annotated[str, Field(max_length=18)] | None, BeforeValidator(_blank_is_none)]
Opt32 = Annotated[Annotated[str, Field(max_length=32)] | None, BeforeValidator(_blank_is_none)]
Opt64 = Annotated[Annotated[str, Field(max_length=64)] | None, BeforeValidator(_blank_is_none)]
Opt128 = Annotated[Annotated[str, Field(max_length=128)] | None, BeforeValidator(_blank_is_none)]
Opt1024 = Annotated[Annotated[str, Field(max_length=1024)] | None, BeforeValidator(_blank_is_none)]
Kg = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("999999.99999"), decimal_places=5, allow_inf_nan=False, description="kg"),
]
OptKg = Annotated[
    Annotated[Decimal, Field(ge=0, le=Decimal("999999.99999"), decimal_places=5, allow_inf_nan=False)] | None,
    BeforeValidator(_blank_is_none),
    Field(description="kg"),
]
Code = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=512)


class Head(_Part):
    """PassportHead. Required: what a gate and the park's accounts need; the rest is carried as given."""

    seqNo: Opt18 = Field(None, description="pre-entry number (预录入统一编号), as given")
    passportNo: Opt64 = Field(
        None, description="assigned on approval (by customs, or by central in simulate mode)"
    )
    etpsPreentNo: Code = Field(description="the enterprise's own note number: unique; a repeat is refused")
    dclTypecd: Literal["1"] = Field(
        "1", description="1 new; a change is a delete and a new note; delete with POST …/delete"
    )
    passportTypecd: NoteType
    bindTypecd: Annotated[BindType | None, BeforeValidator(_blank_is_none)] = None
    ioTypecd: Literal["I", "E"] = Field(description="I into the area, E out of it")
    rltTbTypecd: Annotated[
        Annotated[str, Field(max_length=8, pattern=r"^[A-Za-z0-9]+$")] | None, BeforeValidator(_blank_is_none)
    ] = None
    rltNo: Opt1024 = Field(None)
    masterCuscd: Annotated[str, BeforeValidator(_strip), Field(pattern=r"^\d{4}$")]
    areainOriactNo: Code = Field(description="the area's account book: names the park")
    areainEtpsSccd: Opt18 = Field(None)
    areainEtpsno: Opt10 = Field(None)
    areainEtpsNm: OptText = Field(None)
    dclEtpsSccd: Opt18 = Field(None)
    dclEtpsno: Code = Field(max_length=10, description="declaring enterprise: one of the token's codes")
    dclEtpsNm: OptText = Field(None)
    inputSccd: Opt18 = Field(None)
    inputCode: Opt10 = Field(None)
    inputName: OptText = Field(None)
    vehicleNo: Annotated[
        str,
        BeforeValidator(lambda v: normalise_plate(v) if isinstance(v, str) else v),
        Field(min_length=1, max_length=32, pattern=r"^\S+$"),
    ]
    vehicleIcNo: Annotated[
        Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9]+$")] | None,
        BeforeValidator(_blank_is_none),
    ] = None
    vehicleWt: Kg = Field(description="the vehicle's tare, kg")
    vehicleFrameWt: Annotated[Decimal, BeforeValidator(lambda v: "0" if _blank_is_none(v) is None else v)] = (
        Field(
            Decimal(0),
            ge=0,
            le=Decimal("999999.99999"),
            decimal_places=5,
            allow_inf_nan=False,
            description="the trailer frame's tare, kg (empty: 0)",
        )
    )
    vehicleFrameNo: Opt32 = Field(None)
    containerNo: Annotated[
        Annotated[str, Field(max_length=11)] | None,
        BeforeValidator(lambda v: containers.normalise(v) or None if isinstance(v, str) else v),
    ] = None
    containerType: Annotated[Annotated[str, Field(max_length=8)] | None, BeforeValidator(_blank_is_none)] = (
        None
    )
    containerWt: OptKg = None
    totalGrossWt: Kg = Field(description="goods gross weight, kg")
    totalNetWt: Kg = Field(description="goods net weight, kg")
    totalWt: Kg = Field(description="vehicle + frame + container + goods, kg")
    dclErConc: Opt128 = Field(None, description="applicant and phone: personal data, never leaves central")
    sealNo: Annotated[
        Annotated[str, Field(max_length=65, pattern=r"^[A-Za-z0-9\-]{1,32}(\|[A-Za-z0-9\-]{1,32})?$")] | None,
        BeforeValidator(_blank_is_none),
    ] = Field(None, description="Bondgate: electronic seal ids the gate must read, two at most, '|'-joined")
    rmk: OptText = Field(None)
    col1: OptText = None
    col2: OptText = None
    col3: OptText = None
    col4: OptText = None

    @property
    def seal_ids(self) -> tuple[str, ...]:
        return tuple(self.sealNo.split("|")) if self.sealNo else ()


class Line(_Part):
    """PassportList: one goods line."""

    seqNo: Opt18 = Field(None, description="the head's, repeated; not read")
    passportNo: Opt64 = Field(None, description="the head's, repeated; not read")
    passportSeqNo: int = Field(ge=1, le=MAX_LINES)
    rltGdsSeqno: int | None = Field(None, ge=1, le=99999)
    gdsMtno: Opt32 = Field(None)
    gdecd: Annotated[Annotated[str, Field(pattern=r"^\d{8,10}$")] | None, BeforeValidator(_blank_is_none)] = (
        None
    )
    gdsNm: OptText = Field(None)
    dclUnitcd: Annotated[
        Annotated[str, Field(pattern=r"^\d{3}$")] | None, BeforeValidator(_blank_is_none)
    ] = None
    dclQty: OptKg = None
    grossWt: Kg
    netWt: Kg
    rmk: OptText = Field(None)


class Acmp(_Part):
    """PassportAcmp: one related document (for parcels: an inventory, by invtNo)."""

    seqNo: Opt18 = Field(None, description="the head's, repeated; not read")
    passPortNo: Opt64 = Field(None, description="the head's, repeated; not read")
    rtlBillTypecd: Annotated[
        str, BeforeValidator(_strip), Field(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    ]
    rtlBillNo: Code


class NoteIn(_Part):
    """A release note as submitted: SAS121's head, goods lines (`list`) and related documents (`acmp`)."""

    head: Head
    list: tuple[Line, ...] = Field((), max_length=MAX_LINES)
    acmp: tuple[Acmp, ...] = Field((), max_length=MAX_RELATED)

    @property
    def inventories(self) -> tuple[str, ...]:
        """invtNos of the parcels on the vehicle (related documents of type CEB621), in note order."""
        return tuple(a.rtlBillNo for a in self.acmp if a.rtlBillTypecd == INVENTORY_DOC_TYPE)


def problems(note: NoteIn) -> list[str]:
    """The rules between fields, every one broken (empty: the note is well formed)."""
    h = note.head
    found: list[str] = []
    kind = h.passportTypecd
    if kind is NoteType.GATE_REGISTERED:
        found.append(
            "passportTypecd 5 (gate-registered goods) is not taken: goods leaving the park must be on"
            " inventories (CEB621) central can check"
        )
    if kind in (NoteType.GATE_REGISTERED, NoteType.EMPTY_VEHICLE):
        name = f"passportTypecd {kind.value}"
        if h.bindTypecd is not None:
            found.append(f"{name} carries no bindTypecd")
        if h.rltTbTypecd is not None or h.rltNo is not None:
            found.append(f"{name} carries no related document (rltTbTypecd, rltNo)")
        if note.acmp:
            found.append(f"{name} carries no related documents (acmp)")
    else:
        if h.bindTypecd is None:
            found.append(f"passportTypecd {kind.value} needs bindTypecd (1, 2 or 3)")
        if h.rltTbTypecd is None:
            found.append(f"passportTypecd {kind.value} needs rltTbTypecd and its documents in acmp")
        if not note.acmp:
            found.append(f"passportTypecd {kind.value} needs at least one related document (acmp)")
    if kind is NoteType.EMPTY_VEHICLE:
        if note.list:
            found.append("passportTypecd 6 (empty vehicle) carries no goods lines")
        if h.totalGrossWt or h.totalNetWt:
            found.append("passportTypecd 6 (empty vehicle): totalGrossWt and totalNetWt must be 0")
    if h.bindTypecd is BindType.ONE_TO_ONE and len(note.acmp) > 1:
        found.append(f"bindTypecd 2 (one vehicle, one declaration) but {len(note.acmp)} related documents")
    if h.rltTbTypecd is not None and h.rltTbTypecd != INVENTORY_DOC_TYPE:
        found.append(
            f"rltTbTypecd {h.rltTbTypecd}: central checks only cross-border inventories"
            f" ({INVENTORY_DOC_TYPE}) as the goods a vehicle takes out; declare the goods as inventories"
        )
    for i, a in enumerate(note.acmp, 1):
        if a.rtlBillTypecd != INVENTORY_DOC_TYPE:
            found.append(f"acmp {i}: rtlBillTypecd {a.rtlBillTypecd} is not {INVENTORY_DOC_TYPE}")
        elif h.rltTbTypecd is not None and a.rtlBillTypecd != h.rltTbTypecd:
            found.append(
                f"acmp {i}: rtlBillTypecd {a.rtlBillTypecd} is not the head's rltTbTypecd {h.rltTbTypecd}"
            )
    seen: set[tuple[str, str]] = set()
    for a in note.acmp:
        key = (a.rtlBillTypecd, a.rtlBillNo)
        if key in seen:
            found.append(f"acmp: {a.rtlBillTypecd} {a.rtlBillNo} is listed twice")
        seen.add(key)
    if note.inventories:
        if h.ioTypecd != "E":
            found.append("a note carrying inventories (CEB621) takes parcels out of the area: ioTypecd E")
        bad = [n for n in note.inventories if len(n) != 18]
        if bad:
            found.append(f"invtNo must be 18 characters: {', '.join(bad[:5])}")
    # container
    if h.containerNo is not None:
        if (why := containers.problem(h.containerNo)) is not None:
            found.append(why)
        if h.containerWt is None:
            found.append("containerNo given without containerWt")
        elif (why := containers.tare_problem(h.containerType, h.containerWt)) is not None:
            found.append(why)
    elif h.containerWt:
        found.append("containerWt given without containerNo")
    # weights
    container_wt = h.containerWt or Decimal(0)
    expected = h.vehicleWt + h.vehicleFrameWt + container_wt + h.totalGrossWt
    if h.totalWt != expected:
        found.append(
            f"totalWt {h.totalWt} is not vehicleWt {h.vehicleWt} + vehicleFrameWt {h.vehicleFrameWt}"
            f" + containerWt {container_wt} + totalGrossWt {h.totalGrossWt} = {expected}"
        )
    if h.totalNetWt > h.totalGrossWt:
        found.append(f"totalNetWt {h.totalNetWt} exceeds totalGrossWt {h.totalGrossWt}")
    if note.list:
        numbers = [line.passportSeqNo for line in note.list]
        if numbers != list(range(1, len(numbers) + 1)):
            found.append("list: passportSeqNo must run 1, 2, 3 … in order")
        gross = sum((line.grossWt for line in note.list), Decimal(0))
        net = sum((line.netWt for line in note.list), Decimal(0))
        if gross != h.totalGrossWt:
            found.append(f"the lines' grossWt add up to {gross}, not totalGrossWt {h.totalGrossWt}")
        if net != h.totalNetWt:
            found.append(f"the lines' netWt add up to {net}, not totalNetWt {h.totalNetWt}")
        for line in note.list:
            if line.netWt > line.grossWt:
                found.append(f"list {line.passportSeqNo}: netWt {line.netWt} exceeds grossWt {line.grossWt}")
    return found
