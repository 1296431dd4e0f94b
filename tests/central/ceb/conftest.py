"""Fixtures for the CEB suite: the official XSD and samples from ../shared, when present.

The repository must not carry the standard's files, so every test that needs them skips cleanly
without them (set BONDGATE_SHARED to point elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from central.ceb.messages import DS_NS

ROOT = Path(__file__).resolve().parents[3]


def find_shared() -> Path | None:
    candidate = Path(os.environ.get("BONDGATE_SHARED", ROOT / ".." / "shared")).resolve()
    return candidate if (candidate / "ceb").is_dir() else None


@pytest.fixture(scope="session")
def ceb_dir() -> Path:
    shared = find_shared()
    if shared is None:
        pytest.skip("../shared/ceb (the official XSD and samples) is not present")
    return shared / "ceb"


@pytest.fixture(scope="session")
def xsd(ceb_dir: Path) -> etree.XMLSchema:
    """The official import schema (it imports xmldsig-core-schema.xsd from beside itself)."""
    return etree.XMLSchema(etree.parse(str(ceb_dir / "ceb-import-202205.xsd")))


@pytest.fixture(scope="session")
def signature(ceb_dir: Path) -> bytes:
    """A ds:Signature element lifted from an official sample, to make 621/623/625 schema-complete."""
    root = etree.parse(str(ceb_dir / "samples" / "CEB621Message.xml")).getroot()
    return etree.tostring(root.find(f"{{{DS_NS}}}Signature"))
