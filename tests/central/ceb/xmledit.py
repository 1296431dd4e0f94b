"""Small helpers to take a valid message apart in tests: find elements, edit, serialise again."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from central.ceb.messages import NS

NSMAP = {"ceb": NS}


def edit(xml: bytes, change: Callable[[etree._Element], object]) -> bytes:
    """`xml` after `change(root)` mutated its tree."""
    root = etree.fromstring(xml)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def find(root: etree._Element, path: str) -> etree._Element:
    """The one element at `path` (an XPath using the ceb: prefix)."""
    found = root.xpath(path, namespaces=NSMAP)
    assert isinstance(found, list) and len(found) >= 1, path
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def ceb(name: str, text: str | None = None) -> etree._Element:
    el = etree.Element(f"{{{NS}}}{name}")
    el.text = text
    return el


def set_text(path: str, text: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        find(root, path).text = text

    return change


def remove(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = find(root, path)
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return change
