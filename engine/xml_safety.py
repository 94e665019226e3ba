"""Parse uploaded XML without ever resolving anything it points at.

Uploaded diagrams are untrusted: a DOCTYPE can declare external entities (file or network reads) or
nested entities that expand to gigabytes. We refuse every DTD outright, because no BPMN or DMN tool
writes one, and lxml is told never to resolve entities, load DTDs or touch the network.
"""
from __future__ import annotations

from lxml import etree

_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=False,
)


class UnsafeXml(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def parse_untrusted(content: bytes) -> etree._ElementTree:
    """Return the parsed document or raise UnsafeXml with a message and line a person can act on."""
    if not content.strip():
        raise UnsafeXml("the file is empty")
    # A DTD is refused before parsing so that not even the internal subset is processed.
    head = content[:4096].lstrip(b"\xef\xbb\xbf")
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in content.upper():
        raise UnsafeXml("DOCTYPE and ENTITY declarations are not allowed in uploaded XML "
                        "(they can read files or expand without bound); remove them")
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        raise UnsafeXml(f"not well-formed XML: {exc.msg}", line) from None
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise UnsafeXml(f"not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise UnsafeXml("DOCTYPE declarations are not allowed in uploaded XML; remove it")
    return tree
