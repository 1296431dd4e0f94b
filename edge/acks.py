"""What central's answer to an upload may delete from the outbox: only what that upload carried.

The uplink deletes events on central's word, so the word is checked first (pure, no I/O): an answer
is parsed as central's acknowledgement and held against what the request carried (`Sent`). An
answer that claims more than the request could prove, or goes backwards, deletes nothing
(`AckVerdict.problem` says why):

* not central's acknowledgement at all (not JSON, no integer `acked_seq`, a bool, a string);
* for another epoch of the chain than the one sent;
* an `acked_seq` beyond the last event this edge ever created (an ack of 10^9 from an impostor, or a
  central holding a longer chain: this database was restored from an older copy);
* an `acked_seq` below the previous acknowledgement or below the request's first seq − 1 (central
  holds less than it acknowledged before: its database was restored, or it is not our central);
* refusals naming a seq the request did not carry;
* none of the events taken and none refused, which no central does.

Otherwise the answer is taken, never beyond what the request carried and never over a refused
event: everything up to `min(acked_seq, first refused seq − 1, last seq sent)` is deleted. An
`acked_seq` above the request's last seq but within the chain is central holding more of the chain
than this request carried, which happens after acknowledgements were lost (they are committed
without an fsync: a power cut can take several batches' worth); only what the request carried is
deleted, and the rest is sent again, which central answers as duplicates. A refused seq at or
below `acked_seq` is central holding a *different* event there (a conflict): that event is never
deleted, however far the acknowledgement goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError


class RefusedEvent(BaseModel):
    """One event central did not store, and why (central's `Refusal`)."""

    model_config = ConfigDict(extra="ignore")
    seq: StrictInt
    reason: str = Field("", max_length=2000)
    code: str = Field("", max_length=64)


class CentralAnswer(BaseModel):
    """Central's answer to an upload (central.events.IngestResult), as far as the edge relies on it."""

    model_config = ConfigDict(extra="ignore")
    acked_seq: StrictInt = Field(ge=0)
    epoch: StrictInt | None = Field(None, ge=1, description="absent: the answer predates epochs (1)")
    stored: StrictInt = Field(0, ge=0)
    duplicates: StrictInt = Field(0, ge=0)
    refused: list[RefusedEvent] = Field(default_factory=list)


@dataclass(frozen=True)
class Sent:
    """What one upload carried, and the chain as it stood when it was sent."""

    first: int  # seq of the first event in the request
    last: int  # seq of the last (the outbox is contiguous: first..last)
    epoch: int
    acked_before: int  # the acknowledgement stored before this request
    head: int  # the last seq this edge had created when the request was built


@dataclass(frozen=True)
class AckVerdict:
    delete_through: int | None  # delete every outbox event with seq <= this; None: delete nothing
    problem: str | None = None  # why the answer was not taken (nothing deleted), None: taken
    refused: tuple[RefusedEvent, ...] = ()  # events central refused: kept in the outbox
    beyond_request: bool = False  # central acknowledged past what this request carried
    answer: CentralAnswer | None = None

    @property
    def first_refusal(self) -> RefusedEvent | None:
        return min(self.refused, key=lambda r: r.seq) if self.refused else None


def _refuse(problem: str, answer: CentralAnswer | None = None, sent: Sent | None = None) -> AckVerdict:
    """Nothing deleted; the refusals central gave for events the request carried are still told."""
    refused: tuple[RefusedEvent, ...] = ()
    if answer is not None and sent is not None:
        carried = (r for r in answer.refused if sent.first <= r.seq <= sent.last)
        refused = tuple(sorted(carried, key=lambda r: r.seq))
    return AckVerdict(delete_through=None, problem=problem, refused=refused, answer=answer)


def judge(sent: Sent, body: bytes) -> AckVerdict:
    """The verdict on central's answer `body` to the upload `sent` (see the module docstring)."""
    try:
        answer = CentralAnswer.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return _refuse(f"not an acknowledgement: {where}: {first['msg']}")
    acked = answer.acked_seq
    if (answer.epoch or 1) != sent.epoch:
        return _refuse(f"answer is for epoch {answer.epoch}, the request was epoch {sent.epoch}", answer)
    if acked > sent.head:
        return _refuse(
            f"acked_seq {acked} is beyond this edge's chain, which ends at seq {sent.head}"
            " (an impostor, or central holds a longer chain: was this database restored?)",
            answer,
            sent,
        )
    if acked < sent.acked_before:
        return _refuse(
            f"acked_seq {acked} goes backwards: central acknowledged {sent.acked_before} before", answer
        )
    if acked < sent.first - 1:
        return _refuse(f"acked_seq {acked} is below the request, which started at seq {sent.first}", answer)
    outside = [r.seq for r in answer.refused if not sent.first <= r.seq <= sent.last]
    if outside:
        return _refuse(
            f"refuses seq {outside[0]}, which the request ({sent.first}..{sent.last}) did not carry", answer
        )
    refused = tuple(sorted(answer.refused, key=lambda r: r.seq))
    if not refused and acked < sent.first:
        return _refuse(f"took none of seq {sent.first}..{sent.last} and refused none", answer)
    through = min(acked, sent.last)
    if refused:
        through = min(through, refused[0].seq - 1)
    return AckVerdict(
        delete_through=through if through >= sent.first else None,
        refused=refused,
        beyond_request=acked > sent.last,
        answer=answer,
    )
