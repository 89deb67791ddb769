"""Read CASME II's coding sheet: the owner's `.xlsx`, or a `.csv` export of it.

An .xlsx file is a zip of XML parts (ECMA-376); the coding sheet needs only its worksheets' cell
values, which the standard library reads (zipfile + ElementTree), so no spreadsheet package is
needed. Cells come back as strings: shared and inline strings as written, numbers as Excel
stores them ("46", "0.5"), booleans as "1"/"0", empty cells as "".
"""

from __future__ import annotations

import csv
import pathlib
import re
import zipfile
import xml.etree.ElementTree as ET

from fer_jax.errors import InputError

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_DOC_RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def read_tables(path: str | pathlib.Path) -> list[list[list[str]]]:
    """Every worksheet of an .xlsx (in the workbook's order), or the one table of a .csv, as rows
    of cell strings: empty cells "", rows padded to the same length. InputError "bad_label" when
    the file is neither a readable .xlsx nor a .csv."""
    path = pathlib.Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [_padded([[cell.strip() for cell in row] for row in csv.reader(f)])]
    try:
        return [_padded(rows) for rows in _xlsx_tables(path)]
    except (zipfile.BadZipFile, KeyError, StopIteration, ET.ParseError) as e:
        message = f"not a readable .xlsx workbook ({e!r}); re-copy it, or export it as .csv"
        raise InputError(path, "bad_label", message) from None


def _padded(rows: list[list[str]]) -> list[list[str]]:
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]


def _xlsx_tables(path: pathlib.Path) -> list[list[list[str]]]:
    with zipfile.ZipFile(path) as book:
        shared = _shared_strings(book)
        return [_sheet_rows(ET.fromstring(book.read(part)), shared) for part in _sheet_parts(book)]


def _sheet_rows(sheet: ET.Element, shared: list[str]) -> list[list[str]]:
    rows: dict[int, dict[int, str]] = {}
    for n, row in enumerate(sheet.iter(f"{_MAIN}row")):
        cells = rows.setdefault(int(row.get("r", n + 1)) - 1, {})
        for k, cell in enumerate(row.iter(f"{_MAIN}c")):
            ref = cell.get("r")
            cells[_column_index(ref) if ref else (max(cells) + 1 if cells else k)] = _cell_text(cell, shared)
    width = max((max(cells) + 1 for cells in rows.values() if cells), default=0)
    return [[rows.get(r, {}).get(c, "") for c in range(width)] for r in range(max(rows, default=-1) + 1)]


def _sheet_parts(book: zipfile.ZipFile) -> list[str]:
    """The zip members of the workbook's worksheets, in its order (workbook.xml and its rels)."""
    workbook = ET.fromstring(book.read("xl/workbook.xml"))
    rels = ET.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in rels.iter(f"{_PKG_RELS}Relationship")}
    parts = []
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets[sheet.get(f"{_DOC_RELS}id")]
        parts.append(target.lstrip("/") if target.startswith("/") else f"xl/{target}")
    return parts


def _shared_strings(book: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in book.namelist():
        return []
    table = ET.fromstring(book.read("xl/sharedStrings.xml"))
    # A shared string is plain (<si><t>) or rich text (<si><r><t>...</t></r>...); phonetic runs
    # (<rPh>) are reading aids, not part of the value.
    return ["".join(t.text or "" for t in _runs(si)) for si in table.iter(f"{_MAIN}si")]


def _runs(si: ET.Element):
    for child in si:
        if child.tag == f"{_MAIN}t":
            yield child
        elif child.tag == f"{_MAIN}r":
            yield from child.iter(f"{_MAIN}t")


def _cell_text(cell: ET.Element, shared: list[str]) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        inline = cell.find(f"{_MAIN}is")
        return "" if inline is None else "".join(t.text or "" for t in _runs(inline)).strip()
    value = cell.find(f"{_MAIN}v")
    text = "" if value is None or value.text is None else value.text
    if kind == "s" and text:
        return shared[int(text)].strip()
    return text.strip()


def _column_index(ref: str) -> int:
    """"A1" -> 0, "AB7" -> 27."""
    letters = re.match(r"[A-Za-z]+", ref).group(0).upper()
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1
