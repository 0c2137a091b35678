"""The sample's charset: UTF-8 (with or without a byte order mark), CP932 (Shift_JIS with Microsoft's
extensions, what Japanese Excel writes) or EUC-JP, told apart by charset-normalizer (imported here
only). Binary data, and text in another encoding, is refused with what it looks like."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from pipelines.engine.errors import DataError
from pipelines.guess.model import check

# charset-normalizer's codec names -> the parser's `charset:` (Shift_JIS as CP932, its superset)
CHARSETS = {"ascii": "UTF-8", "utf_8": "UTF-8", "cp932": "CP932", "shift_jis": "CP932", "euc_jp": "EUC-JP"}
CANDIDATES = ["utf_8", "cp932", "shift_jis", "euc_jp"]
UTF8_BOM = b"\xef\xbb\xbf"
LITTLE_EVIDENCE = 64  # non-ASCII bytes: fewer, when several charsets read them, is little to decide on
CONTROL_SHARE = 0.01  # control bytes (not tab, line feed, carriage return, form feed) beyond this: binary
NOT_TEXT = {  # first bytes -> what the data is
    b"Obj\x01": "an Avro container file (the avro parser reads those: `parser: {type: avro}`)",
    b"PAR1": "a Parquet file",
    b"PK\x03\x04": "a zip archive",
    b"\xfd7zXZ\x00": "xz-compressed data",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8: lines must end with the byte 0x0A)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8: lines must end with the byte 0x0A)",
}


@dataclass(frozen=True)
class Decoded:
    charset: str  # as the parser's `charset:` option
    text: str  # the sample decoded, without a byte order mark
    notes: list[str]


def decode_sample(data: bytes, whole: bool, where: str, charset: str | None = None) -> Decoded:
    """The sample as text, in `charset` (the seed's) or in the one detected."""
    if charset is not None:
        text, notes = _decode(data, charset)
        return Decoded(charset, text.removeprefix("\ufeff"), notes)
    _refuse_binary(data, where)
    if data.startswith(UTF8_BOM):
        text, notes = _decode(data[len(UTF8_BOM) :], "UTF-8")
        return Decoded("UTF-8", text, ["the data starts with a UTF-8 byte order mark (Excel's UTF-8 CSV); the parser drops it", *notes])
    chosen, notes = _detect(data, whole, where)
    text, bad = _decode(data, chosen)
    return Decoded(chosen, text, notes + bad)


def _detect(data: bytes, whole: bool, where: str) -> tuple[str, list[str]]:
    import charset_normalizer

    matches = charset_normalizer.from_bytes(data, cp_isolation=CANDIDATES)
    names = list(dict.fromkeys(CHARSETS[m.encoding] for m in matches if m.encoding in CHARSETS))
    if not names:
        raise DataError("the sample is not text in UTF-8, Shift_JIS/CP932 or EUC-JP (the charsets guess tells apart)", where=where)
    chosen = "UTF-8" if "UTF-8" in names else names[0]
    evidence = len(data) - len(data.translate(None, bytes(range(0x80, 0x100))))
    others = [n for n in names if n != chosen]
    if evidence == 0:  # read alike in every candidate charset
        return chosen, [] if whole else [f"charset: the sample is plain ASCII, read alike by every charset; {chosen} assumed"]
    if evidence < LITTLE_EVIDENCE:
        also = f", which {', '.join(others)} reads too" if others else ""
        return chosen, [check(f"charset: {chosen} decided on {evidence} non-ASCII bytes{also}; check the text in the preview")]
    return chosen, []


def _decode(data: bytes, charset: str) -> tuple[str, list[str]]:
    """The text, and a note on the lines that are not valid in `charset` (the parser sends them to the error output)."""
    codec = codecs.lookup(charset).name
    try:
        return data.decode(codec), []
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    bad = []
    for number, line in enumerate(lines, start=1):
        try:
            line.decode(codec)
        except UnicodeDecodeError:
            bad.append(number)
    note = check(f"charset {charset}: {len(bad)} line(s) of the sample are not valid {charset} (first: line {bad[0]}); the parser sends them to the error output")
    return data.decode(codec, "replace"), [note]


def _refuse_binary(data: bytes, where: str) -> None:
    for magic, what in NOT_TEXT.items():
        if data.startswith(magic):
            raise DataError(f"the data is {what}, not CSV, TSV or JSON lines", where=where)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"binary data (a NUL byte at byte {nul + 1} of the sample), not CSV, TSV or JSON lines", where=where)
    controls = len(data) - len(data.translate(None, bytes(set(range(0x20)) - {9, 10, 12, 13})))
    if controls > CONTROL_SHARE * len(data):
        raise DataError(f"binary data ({controls} control bytes in {len(data)}), not CSV, TSV or JSON lines", where=where)
