"""Parse uploaded XML without ever resolving anything it points at.

Uploaded diagrams are untrusted: a DOCTYPE can declare external entities (file or network reads) or
nested entities that expand to gigabytes. We refuse every DTD outright, because no BPMN or DMN tool
writes one, and lxml is told never to resolve entities, load DTDs or touch the network; a resolver
that refuses every URL backs that up. XInclude is never processed (we do not call `xinclude()`), so
an `xi:include` stays an inert element. libxml2's default depth limit (256) stays on, so a deeply
nested document fails fast in C instead of reaching recursive Python code.
"""
from __future__ import annotations

import codecs
import re
from typing import NoReturn

from lxml import etree

# Byte patterns of an XML document's first characters, for encodings whose bytes do not contain the
# ASCII text of "<!DOCTYPE" (XML 1.0, appendix F). 32-bit BOMs first: FF FE 00 00 starts with FF FE.
_SIGNATURES = [
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
    (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"),
]
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class UnsafeXml(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _RefuseEveryUrl(etree.Resolver):
    """Second line of defence: should libxml2 ever try to load a DTD, entity or include, fail."""

    def resolve(self, url: str | None, pubid: str | None, context: object) -> NoReturn:
        raise UnsafeXml(f"the document tries to load '{url}'; uploaded XML may not refer to other files "
                        "or URLs: remove the reference")


def _as_text(content: bytes) -> str:
    """The document decoded well enough to look for markup, whatever its encoding."""
    for signature, encoding in _SIGNATURES:
        if content.startswith(signature):
            return content.decode(encoding, errors="replace").lstrip("\ufeff")
    declared = _DECLARED_ENCODING.match(content[:200])
    encoding = "utf-8"
    if declared:
        try:
            encoding = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass  # libxml2 reports the unknown encoding when it parses
    return content.decode(encoding, errors="replace")


def parse_untrusted(content: bytes) -> etree._ElementTree:
    """Return the parsed document or raise UnsafeXml with a message and line a person can act on."""
    text = _as_text(content)
    if not text.strip():
        raise UnsafeXml("the file is empty")
    if not text.lstrip().startswith("<"):
        raise UnsafeXml("the file is not XML (it does not start with '<'): upload the BPMN 2.0 XML file "
                        "itself, not an archive, image or PDF")
    # A DTD is refused before parsing so that not even the internal subset is processed. The search
    # runs on decoded text (in UTF-16 the bytes of "<!DOCTYPE" are not the ASCII ones) and only over the
    # prolog, the one place a DTD can be: a script or documentation may well quote "<!DOCTYPE html>".
    root_start = re.search(r"<[^!?]", text)
    prolog = text[:root_start.start()] if root_start else text
    declaration = re.search(r"<!(DOCTYPE|ENTITY)", prolog, re.IGNORECASE)
    if declaration:
        line = text.count("\n", 0, declaration.start()) + 1
        raise UnsafeXml("DOCTYPE and ENTITY declarations are not allowed in uploaded XML (they can read "
                        "files or expand without bound): remove them", line)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=False)
    parser.resolvers.add(_RefuseEveryUrl())
    try:
        root = etree.fromstring(content, parser)
    except UnsafeXml:
        raise
    except etree.XMLSyntaxError as exc:
        error_line = exc.lineno if isinstance(exc.lineno, int) else None
        if "Excessive depth" in str(exc.msg):
            raise UnsafeXml("elements are nested more than 256 levels deep; no BPMN or DMN diagram needs that, "
                            "so the file is damaged or not a diagram", error_line) from None
        raise UnsafeXml(f"not well-formed XML: {exc.msg}", error_line) from None
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise UnsafeXml(f"not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype:  # a declaration the text search missed, e.g. in an exotic encoding
        raise UnsafeXml("DOCTYPE declarations are not allowed in uploaded XML; remove it")
    return tree
