"""Text from data files: Unicode normalisation, look-alike detection, and spreadsheet-safe cells."""

import re
import unicodedata

_SPACES_RE = re.compile(r"\s+")  # any Unicode space (no-break, thin, ideographic ...) or control line break

# Letters of other scripts drawn like Latin ones in common fonts (the core of Unicode TR39's confusables for
# Cyrillic and Greek; NFKC already folds full-width, mathematical and ligature forms).
_LOOK_ALIKE = str.maketrans({
    **dict(zip("АВЕКМНОРСТУХаеорсухіјѕԁԛԝІЈЅӏ", "ABEKMHOPCTYXaeopcyxijsdqwIJSl")),
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοιν", "ABEZHIKMNOPTYXoiv")),
})
# Hyphen-like and dash characters all fold to '-' before comparing.
_DASHES_RE = re.compile(r"[\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d\u00ad\u02d7]")
# A cell a spreadsheet would evaluate (OWASP, CSV injection): it starts with one of these characters.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def clean_cell(text):
    """A cell as stored: NFC, invisible characters removed, any run of spaces or line breaks one space."""
    text = _SPACES_RE.sub(" ", unicodedata.normalize("NFC", str(text)))
    # format characters (zero-width spaces and joiners, bidi overrides, a stray byte-order mark) and control
    # characters are invisible: two ids differing only by them look identical, so they are removed
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc")).strip()


def skeleton(text):
    """What a label looks like, for finding look-alikes: compatibility forms, case, look-alike letters, dash
    variants, spaces and hyphens all folded away ('CAR-T', 'car-t', 'CAR–T', 'CAR T' and 'CАR-T' agree)."""
    text = unicodedata.normalize("NFKC", clean_cell(text)).casefold()
    text = _DASHES_RE.sub("-", text.translate(_LOOK_ALIKE))
    return re.sub(r"[\s\-_]+", "", text)


def odd_characters(*texts):
    """'U+0410 CYRILLIC CAPITAL LETTER A, U+2013 EN DASH': the non-ASCII characters that make spellings look alike."""
    odd = sorted({c for c in "".join(texts) if ord(c) > 127 and (c.translate(_LOOK_ALIKE) != c or _DASHES_RE.match(c)
                                                                 or unicodedata.normalize("NFKC", c) != c)})
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in odd)


def is_number(text):
    """A cell that is a plain number ('-0.5', '12'): left as it is in output tables."""
    return bool(_NUMBER_RE.match(text))


def neutralise(cell):
    """A text cell safe to open in a spreadsheet (OWASP): a leading = + - @ tab or CR gets a ' in front, and so
    does a cell already starting with ' before one of them, so that unneutralise() restores every cell exactly."""
    if not isinstance(cell, str) or not cell or is_number(cell):
        return cell
    if cell.startswith(FORMULA_START) or (cell.startswith("'") and cell[1:].startswith(FORMULA_START + ("'",))):
        return "'" + cell
    return cell


def unneutralise(cell):
    """The cell neutralise() was given."""
    if isinstance(cell, str) and cell.startswith("'") and cell[1:].startswith(FORMULA_START + ("'",)):
        return cell[1:]
    return cell
