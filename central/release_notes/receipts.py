"""Release-note receipts: SAS221 (customs approved or refused the note) and SAS223 (the vehicle passed
the gate), shaped as customs sends them (ronannnn/gx-customs-bridge's test receipts): an approval
result `HdeApprResult` and the note as customs holds it, `SasPassportBsc`.

Central writes them itself in `simulate` mode (its simulated customs approves and the edge's passage
passes) and takes them from customs in `customs` mode. Incoming values are text, as in the XML; only
the fields central acts on are required. Customs' receipts carry more fields than these (emapvMarkcd,
logisticsStucd, ownerSystem …): they are ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["ApprovalResult", "MessageType", "NoteReceipt", "PassportBasics"]

MessageType = Literal["SAS221", "SAS223"]


def _blank_is_none(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


Opt = Annotated[Annotated[str, Field(max_length=1024)] | None, BeforeValidator(_blank_is_none)]
SasTime = Annotated[
    Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")] | None,
    BeforeValidator(_blank_is_none),
    Field(description="YYYY-MM-DD HH:MM:SS"),
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=1024, coerce_numbers_to_str=True)


class ApprovalResult(_Part):
    """HdeApprResult."""

    etpsPreentNo: Annotated[str, BeforeValidator(_blank_is_none), Field(min_length=1, max_length=64)]
    businessId: Opt = Field(None, description="customs' note number (passportNo)")
    tmsCnt: Opt = None
    typecd: Opt = None
    manageResult: Annotated[str, BeforeValidator(_blank_is_none), Field(max_length=4)] = Field(
        description="1: approved (SAS221) / done (SAS223); anything else: refused"
    )
    manageDate: SasTime = None
    rmk: Opt = None


class PassportBasics(_Part):
    """SasPassportBsc: the note as customs holds it, with what the gate collected."""

    passportNo: Opt = None
    chgTmsCnt: Opt = None
    passportTypecd: Opt = None
    sasPassportPreentNo: Opt = None
    dclTypecd: Opt = None
    ioTypecd: Opt = None
    bindTypecd: Opt = None
    masterCuscd: Opt = None
    rltTbTypecd: Opt = None
    rltNo: Opt = None
    areainEtpsno: Opt = None
    areainEtpsNm: Opt = None
    areainEtpsSccd: Opt = None
    vehicleNo: Opt = None
    vehicleIcNo: Opt = None
    containerNo: Opt = None
    vehicleWt: Opt = None
    vehicleFrameNo: Opt = None
    vehicleFrameWt: Opt = None
    containerType: Opt = None
    containerWt: Opt = None
    totalWt: Opt = None
    passCollectWt: Opt = Field(None, description="what the gate's weighbridge collected, kg")
    wtError: Opt = Field(None, description="totalWt − passCollectWt, kg")
    totalGrossWt: Opt = None
    totalNetWt: Opt = None
    dclTime: SasTime = None
    passID: Opt = Field(None, description="the gate (lane) the vehicle passed")
    secdPassId: Opt = None
    passTime: SasTime = None
    secdPassTime: SasTime = None
    stucd: Opt = Field(None, description="0 applied, 1 approved, 2 passed, 3/4 first/second gate, 5, 6")
    rmk: Opt = None


class NoteReceipt(_Part):
    """One SAS221 or SAS223 receipt, in JSON as in XML."""

    messageType: MessageType
    HdeApprResult: ApprovalResult
    SasPassportBsc: PassportBasics | None = None

    @property
    def note_no(self) -> str:
        return self.HdeApprResult.etpsPreentNo

    @property
    def passport_no(self) -> str | None:
        bsc = self.SasPassportBsc
        return self.HdeApprResult.businessId or (bsc.passportNo if bsc else None)

    @property
    def approved(self) -> bool:
        return self.HdeApprResult.manageResult == "1"
