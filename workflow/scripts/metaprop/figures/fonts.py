"""The figures' font: matplotlib's own DejaVu Sans, cut to the characters figures print, so that PDFs can embed
TrueType (pdf.fonttype 42, which submission systems accept) at the cost of Type 3.

matplotlib subsets the whole font (6,000 glyphs, its layout tables included) anew for every PDF: 0.4 CPU-s a
figure with three faces. Cut to 550 glyphs once (0.5 CPU-s, kept in matplotlib's cache folder under a key of the
source fonts' bytes, fontTools' version and this file), each PDF's subset costs a few ms. A character outside the
cut (a study named in Chinese) falls back to the whole DejaVu Sans, glyph by glyph.

Each face has a twin without the layout tables (GSUB, GPOS, GDEF, MATH), glyph for glyph the same: matplotlib lays
text out with the face (kerning through libraqm) and embeds the subset of the twin, which no PDF viewer can tell
apart and which fontTools subsets five times faster (5 instead of 25 ms, 3 to 6 times per PDF).
"""

import atexit
import functools
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from matplotlib.backends import _backend_pdf_ps

SOURCE = "DejaVu Sans"
FAMILY = "MetaProp Sans"  # a subset is a modified font: it carries its own name
FACES = [("normal", "normal", "Regular"), ("bold", "normal", "Bold"), ("normal", "oblique", "Oblique"),
         ("bold", "oblique", "BoldOblique")]
# Latin (ASCII, Latin-1, Latin Extended-A), Greek, dashes, quotes, bullets and the ellipsis, super- and subscripts,
# arrows and the comparison and arithmetic signs.
CHARACTERS = "".join(chr(c) for first, last in ((0x20, 0x7E), (0xA0, 0x17F), (0x391, 0x3C9), (0x2010, 0x2044),
                                                (0x2070, 0x209C), (0x2190, 0x2193)) for c in range(first, last + 1))
CHARACTERS += "−±×÷√∞≈≠≤≥"
LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "MATH")  # read when text is laid out, never when a PDF is shown
TWIN_SUFFIX = ".embed.ttf"


def _cut(source, target, style_name):
    """Write `source` cut to CHARACTERS as `target`, named FAMILY (style `style_name`)."""
    from fontTools import subset  # here: a cached cut needs no fontTools

    # kerning and the composition and mark features DejaVu Sans has, but no ligatures: a ligature glyph stands for
    # two characters, which matplotlib embeds as a second copy of the face in every PDF
    options = subset.Options(layout_features=["kern", "case", "locl", "ccmp", "mark", "mkmk"],
                             name_IDs=[1, 2, 3, 4, 5, 6, 16, 17])
    options.drop_tables += ["FFTM"]  # FontForge's timestamp
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=CHARACTERS)
    subsetter.subset(font)
    names = font["name"]
    postscript = f"{FAMILY.replace(' ', '')}-{style_name}"
    for name_id, value in ((1, FAMILY), (4, f"{FAMILY} {style_name}"), (6, postscript), (16, FAMILY),
                           (3, postscript)):
        names.removeNames(nameID=name_id)
        names.setName(value, name_id, 3, 1, 0x409)
        names.setName(value, name_id, 1, 0, 0)
    font.save(target)
    for table in LAYOUT_TABLES:  # deleting tables keeps the glyph order: glyph ids mean the same in both files
        if table in font:
            del font[table]
    font.save(target.with_suffix(TWIN_SUFFIX))
    font.close()


def _sources():
    """{style name: path of the DejaVu Sans face matplotlib ships}."""
    return {style_name: font_manager.findfont(font_manager.FontProperties(family=SOURCE, weight=weight, style=style),
                                              fallback_to_default=False)
            for weight, style, style_name in FACES}


def _key(sources):
    """What the cut depends on: the source fonts' bytes, fontTools' version and this file."""
    import fontTools

    digest = hashlib.sha256(f"{fontTools.version}\n".encode() + Path(__file__).read_bytes())
    for name, path in sorted(sources.items()):
        digest.update(name.encode() + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def _cut_all(sources, folder):
    """The four faces cut into `folder` (made here)."""
    folder.mkdir(parents=True)
    for style_name, source in sources.items():
        _cut(source, folder / f"{FAMILY.replace(' ', '')}-{style_name}.ttf", style_name)


def _cached(sources):
    """The folder of the cut faces in matplotlib's cache folder, cut there first if missing (into a temporary
    folder renamed into place, so that a concurrent job never reads a half-written font); a temporary folder,
    removed at exit, where the cache cannot be written."""
    folder = Path(matplotlib.get_cachedir()) / "metaprop-fonts" / _key(sources)
    if folder.is_dir():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".cut-", dir=folder.parent))
        _cut_all(sources, staging / "faces")
        try:
            os.rename(staging / "faces", folder)
        except OSError:  # another job put the same cut there first
            pass
        shutil.rmtree(staging, ignore_errors=True)
        if folder.is_dir():
            return folder
    except OSError:  # a read-only cache folder
        pass
    folder = Path(tempfile.mkdtemp(prefix="metaprop-fonts-")) / "faces"
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)
    _cut_all(sources, folder)
    return folder


@functools.lru_cache(maxsize=64)  # some 10 kB each
def _twin_subset(subset, twin, face_index, glyphs):
    """(bytes, glyph index map) of `subset` (matplotlib's subsetter) of the glyphs of a twin: kept for a later PDF
    that needs the same glyphs of that face, as the figures of one kind often do (5 ms of fontTools each time)."""
    with subset(font_manager.FontPath(twin, face_index), glyphs) as found:
        return _backend_pdf_ps.font_as_file(found.font).getvalue(), dict(found.glyph_index_map)


def _embedding_twins(twins):
    """matplotlib's PDF font subsetter, reading the layout-free twin of each face in `twins` ({face path: twin
    path}) instead of the face: matplotlib has no setting for the file a PDF embeds."""
    subset = getattr(_backend_pdf_ps.get_glyphs_subset, "__wrapped__", _backend_pdf_ps.get_glyphs_subset)

    def get_glyphs_subset(fontfile, glyphs):
        twin = twins.get(os.path.realpath(fontfile))  # matplotlib may name the file by another path to it
        if twin is None:
            return subset(fontfile, glyphs)
        data, index = _twin_subset(subset, twin, fontfile.face_index, frozenset(glyphs))
        # read as fontTools.subset.load_font reads a font: saved again, its bytes are those kept
        font = TTFont(io.BytesIO(data), recalcBBoxes=False, recalcTimestamp=False)
        return _backend_pdf_ps.SubsetResults(font, dict(index))._as_cm()

    get_glyphs_subset.__wrapped__ = subset
    return get_glyphs_subset


def install():
    """Register the cut faces of DejaVu Sans with matplotlib and make FAMILY the figures' font, with DejaVu Sans
    behind it for characters outside the cut; PDFs embed the faces' twins."""
    folder = _cached(_sources())
    twins = {}
    for _, _, style_name in FACES:
        face = folder / f"{FAMILY.replace(' ', '')}-{style_name}.ttf"
        font_manager.fontManager.addfont(str(face))
        twins[os.path.realpath(face)] = str(face.with_suffix(TWIN_SUFFIX))
    matplotlib.rcParams["font.family"] = [FAMILY, SOURCE]
    _backend_pdf_ps.get_glyphs_subset = _embedding_twins(twins)
