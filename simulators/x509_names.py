"""X.500 names as the JDK prints them: a port of `sun.security.x509.X500Name.getName()` (RDNs in reverse of
their encoding order joined by ", ", an RDN's AVAs joined by " + ") and `AVA.toKeywordValueString`, for the IS 7
simulator, which compares `trusted_issuer` with `cert.getIssuerDN().getName()`.

The simulator's own implementation: it reads the name's DER itself (so values Java cannot read as strings are
printed from their original encoding) and shares no code with the portal. tests/test_x509_names.py checks it
against a real JDK.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

__all__ = ["issuer_name", "java_name", "subject_name"]

# AVAKeyword's static table, in the JDK's declaration order. Each constructor puts into the OID map, so for an
# OID with two keywords the later one is what getName() prints (ST not S, DNQ not DNQUALIFIER, EMAILADDRESS not
# EMAIL).
_AVA_KEYWORDS = (
    ("CN", "2.5.4.3"), ("C", "2.5.4.6"), ("L", "2.5.4.7"), ("S", "2.5.4.8"), ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"), ("OU", "2.5.4.11"), ("T", "2.5.4.12"), ("IP", "1.3.6.1.4.1.42.2.11.2.1"),
    ("STREET", "2.5.4.9"), ("DC", "0.9.2342.19200300.100.1.25"), ("DNQUALIFIER", "2.5.4.46"),
    ("DNQ", "2.5.4.46"), ("SURNAME", "2.5.4.4"), ("GIVENNAME", "2.5.4.42"), ("INITIALS", "2.5.4.43"),
    ("GENERATION", "2.5.4.44"), ("EMAIL", "1.2.840.113549.1.9.1"), ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("UID", "0.9.2342.19200300.100.1.1"), ("SERIALNUMBER", "2.5.4.5"),
)
OID_TO_KEYWORD: dict[str, str] = {}
for _keyword, _oid in _AVA_KEYWORDS:
    OID_TO_KEYWORD[_oid] = _keyword

# DerValue tags whose getAsString() answers a String; any other value is printed "#" + hex of its DER.
_TAG_UTF8, _TAG_PRINTABLE, _TAG_T61, _TAG_IA5, _TAG_GENERAL, _TAG_UNIVERSAL, _TAG_BMP = \
    0x0C, 0x13, 0x14, 0x16, 0x1B, 0x1C, 0x1E
_STRING_DECODERS = {
    _TAG_UTF8: "utf-8", _TAG_PRINTABLE: "ascii", _TAG_T61: "iso-8859-1", _TAG_IA5: "ascii",
    _TAG_GENERAL: "ascii", _TAG_UNIVERSAL: "utf-32-be", _TAG_BMP: "utf-16-be",
}
# AVA.toKeywordValueString's escapees and DerValue.isPrintableStringChar.
_ESCAPEES = ',+=\n<>#;\\"'
_PRINTABLE_EXTRA = " '()+,-./:=?"


class DerError(ValueError):
    pass


@dataclass(frozen=True)
class _Tlv:
    tag: int
    content: bytes
    encoding: bytes  # the whole TLV as it appeared: what DerValue.toByteArray() gives back


def _read_tlv(data: bytes, offset: int) -> tuple[_Tlv, int]:
    if offset + 2 > len(data):
        raise DerError("truncated")
    tag, first = data[offset], data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or position + count > len(data):
            raise DerError("bad length")
        length = int.from_bytes(data[position:position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise DerError("truncated")
    return _Tlv(tag, data[position:end], data[offset:end]), end


def _children(content: bytes) -> list[_Tlv]:
    items, offset = [], 0
    while offset < len(content):
        item, offset = _read_tlv(content, offset)
        items.append(item)
    return items


def _oid(content: bytes) -> str:
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(n) for n in [first, arcs[0] - 40 * first, *arcs[1:]])


def _is_printable_string_char(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z") or ("0" <= char <= "9") or char in _PRINTABLE_EXTRA


def _keyword_value_string(keyword: str, value: _Tlv) -> str:
    """AVA.toKeywordValueString(keyword)."""
    encoding = _STRING_DECODERS.get(value.tag)
    if encoding is None:
        return f"{keyword}=#{value.encoding.hex()}"  # JDK 17+: HexFormat, lower case
    text = value.content.decode(encoding, errors="replace")
    quote_needed = False
    buffer: list[str] = []
    previous_white = False
    length = len(text)
    already_quoted = length > 1 and text[0] == '"' and text[-1] == '"'
    for i, c in enumerate(text):
        if already_quoted and (i == 0 or i == length - 1):
            buffer.append(c)
            continue
        if _is_printable_string_char(c) or c in _ESCAPEES:
            # quote if leading whitespace or special characters
            if not quote_needed and ((i == 0 and c in " \n") or c in _ESCAPEES):
                quote_needed = True
            if c not in " \n":
                if c in '"\\':  # escape '"' and '\'
                    buffer.append("\\")
                previous_white = False
            else:
                if not quote_needed and previous_white:  # quote if multiple internal whitespace
                    quote_needed = True
                previous_white = True
            buffer.append(c)
        else:
            previous_white = False  # other characters are appended as they are
            buffer.append(c)
    rendered = "".join(buffer)
    if rendered and rendered[-1] in " \n":  # quote if trailing whitespace
        quote_needed = True
    if not already_quoted and quote_needed:
        rendered = f'"{rendered}"'
    return f"{keyword}={rendered}"


def _ava_string(ava: _Tlv) -> str:
    oid_tlv, value = _children(ava.content)[:2]
    dotted = _oid(oid_tlv.content)
    return _keyword_value_string(OID_TO_KEYWORD.get(dotted, f"OID.{dotted}"), value)


def java_name(name: x509.Name | bytes) -> str:
    """X500Name.getName() of a Name (or of its DER encoding)."""
    der = name if isinstance(name, bytes) else name.public_bytes()
    sequence, _ = _read_tlv(der, 0)
    rdns = _children(sequence.content)
    return ", ".join(" + ".join(_ava_string(ava) for ava in _children(rdn.content)) for rdn in reversed(rdns))


def _tbs_names(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """The issuer and subject Names exactly as encoded in the TBSCertificate (version, serial, signature,
    issuer, validity, subject)."""
    tbs, _ = _read_tlv(cert.tbs_certificate_bytes, 0)
    fields = _children(tbs.content)
    if fields and fields[0].tag == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    return fields[2].encoding, fields[4].encoding


def issuer_name(cert: x509.Certificate) -> str:
    """cert.getIssuerDN().getName()."""
    return java_name(_tbs_names(cert)[0])


def subject_name(cert: x509.Certificate) -> str:
    """cert.getSubjectDN().getName()."""
    return java_name(_tbs_names(cert)[1])
