"""Release notes (核放单) as a park enterprise declares them, and customs' receipts, for the demo and the
tests: JSON in central's `{head, list, acmp}` shape, SAS121 XML in customs' envelope, and SAS221 /
SAS223 receipts as customs sends them. Built here from SAS121's field list, not from central's
parser, so a test of central's intake does not check central against itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from lxml import etree

from firmware_sim import declarations

DECLARANT = declarations.AGENT_CODE  # a customs broker declares the note for the park's warehouse
CUSTOMS_OFFICE = declarations.CUSTOMS_CODE
INVENTORY = "CEB621"


def note(
    note_no: str,
    invt_nos: Sequence[str],
    *,
    goods_kg: Decimal | str,
    plate: str = "琼A12345",
    card: str | None = "IC0001",
    tare_kg: Decimal | str = "8000",
    frame_kg: Decimal | str = "0",
    container_no: str | None = None,
    container_kg: Decimal | str = "0",
    seal: str | None = None,
    ems_no: str = declarations.DEFAULT_EMS_NO,
    note_type: str = "3",
    bind_type: str | None = "1",
    **head: Any,
) -> dict[str, Any]:
    """A release note taking `invt_nos` out of the park on one vehicle, its totals consistent."""
    goods = Decimal(goods_kg)
    total = Decimal(tare_kg) + Decimal(frame_kg) + (Decimal(container_kg) if container_no else 0) + goods
    values: dict[str, Any] = {
        "etpsPreentNo": note_no,
        "dclTypecd": "1",
        "passportTypecd": note_type,
        "bindTypecd": bind_type,
        "ioTypecd": "E",
        "rltTbTypecd": INVENTORY if invt_nos else None,
        "rltNo": invt_nos[0] if invt_nos else None,
        "masterCuscd": CUSTOMS_OFFICE,
        "areainOriactNo": ems_no,
        "areainEtpsno": declarations.LOGISTICS_CODE,
        "areainEtpsNm": declarations.LOGISTICS_NAME,
        "dclEtpsno": DECLARANT,
        "dclEtpsNm": declarations.AGENT_NAME,
        "vehicleNo": plate,
        "vehicleIcNo": card,
        "vehicleWt": str(tare_kg),
        "vehicleFrameWt": str(frame_kg),
        "containerNo": container_no,
        "containerType": "22G1" if container_no else None,
        "containerWt": str(container_kg) if container_no else None,
        "totalGrossWt": str(goods),
        "totalNetWt": str(goods),
        "totalWt": str(total),
        "dclErConc": "王师傅 13800000000",
        "sealNo": seal,
        **head,
    }
    return {
        "head": {k: v for k, v in values.items() if v is not None},
        "list": [],
        "acmp": [{"rtlBillTypecd": INVENTORY, "rtlBillNo": n} for n in invt_nos],
    }


def _fields(parent: etree._Element, name: str, values: dict[str, Any]) -> None:
    el = etree.SubElement(parent, name)
    for key, value in values.items():
        etree.SubElement(el, key).text = "" if value is None else str(value)


def sas121_xml(body: dict[str, Any]) -> bytes:
    """A note in SAS121's envelope, customs' spellings ("BussinessData", "DelcareFlag") included."""
    root = etree.Element("Signature")
    package = etree.SubElement(etree.SubElement(root, "Object"), "Package")
    _fields(package, "EnvelopInfo", {"version": "1.0", "message_type": "SAS121"})
    business = etree.SubElement(etree.SubElement(package, "DataInfo"), "BussinessData")
    etree.SubElement(business, "DelcareFlag").text = "0"
    message = etree.SubElement(business, "PassPortMessage")
    etree.SubElement(message, "OperCusRegCode").text = DECLARANT
    _fields(message, "PassportHead", body["head"])
    for line in body.get("list", []):
        _fields(message, "PassportList", line)
    for acmp in body.get("acmp", []):
        _fields(message, "PassportAcmp", acmp)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def receipt_xml(
    kind: str,
    note_no: str,
    *,
    passport_no: str | None,
    manage_result: str = "1",
    stucd: str | None = None,
    plate: str | None = None,
    collected_kg: str | None = None,
    remark: str = "",
) -> bytes:
    """Customs' SAS221 (approval) or SAS223 (passed the gate) for a note, as customs' test receipts
    are laid out: Package / EnvelopInfo / DataInfo / BussinessData / SAS22x."""
    package = etree.Element("Package")
    _fields(package, "EnvelopInfo", {"version": "1.0", "message_id": "CUS0000TEST", "message_type": kind})
    data = etree.SubElement(package, "DataInfo")
    _fields(
        data, "PocketInfo", {"pocket_id": f"{passport_no}-1", "total_pocket_qty": "1", "cur_pocket_no": "1"}
    )
    body = etree.SubElement(etree.SubElement(data, "BussinessData"), kind)
    _fields(
        body,
        "HdeApprResult",
        {
            "etpsPreentNo": note_no,
            "businessId": passport_no,
            "tmsCnt": "0",
            "typecd": "1",
            "manageResult": manage_result,
            "manageDate": "2026-12-06 10:00:00",
            "rmk": remark,
        },
    )
    _fields(
        body,
        "SasPassportBsc",
        {
            "passportNo": passport_no,
            "sasPassportPreentNo": note_no,
            "vehicleNo": plate,
            "passCollectWt": collected_kg,
            "passTime": "2026-12-06 10:05:00" if kind == "SAS223" else "",
            "stucd": stucd or ("1" if kind == "SAS221" else "2"),
            "emapvMarkcd": "1",
            "ownerSystem": "1",
        },
    )
    return etree.tostring(package, xml_declaration=True, encoding="UTF-8", standalone=True)


def register_vehicle(
    enterprise: Any, officer: Any, plate: str, *, card: str | None, tare_kg: Decimal | str
) -> None:
    """The enterprise registers its vehicle; an officer, having weighed it, confirms the same weights
    (central takes notes only for vehicles whose weights an officer confirmed). `enterprise` and
    `officer` are HTTP clients of central with those tokens."""
    body = {"vehicleIcNo": card, "vehicleWt": str(tare_kg), "ownerCode": DECLARANT}
    enterprise.put(f"/api/v1/vehicles/{plate}", json=body).raise_for_status()
    officer.put(f"/api/v1/vehicles/{plate}", json=body).raise_for_status()
