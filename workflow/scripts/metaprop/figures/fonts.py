"""The figures' font: matplotlib's own DejaVu Sans, cut once per process to the characters figures print, so that
PDFs can embed TrueType (pdf.fonttype 42, which submission systems accept) at the cost of Type 3.

matplotlib subsets the whole font (6,000 glyphs, its layout tables included) anew for every PDF: 0.4 CPU-s a
figure with three faces. Cut to 550 glyphs once (0.13 CPU-s per process), each PDF's subset costs a few ms.
A character outside the cut (a study named in Chinese) falls back to the whole DejaVu Sans, glyph by glyph.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import matplotlib
from fontTools import subset
from matplotlib import font_manager

SOURCE = "DejaVu Sans"
FAMILY = "MetaProp Sans"  # a subset is a modified font: it carries its own name
FACES = [("normal", "normal", "Regular"), ("bold", "normal", "Bold"), ("normal", "oblique", "Oblique"),
         ("bold", "oblique", "BoldOblique")]
# Latin (ASCII, Latin-1, Latin Extended-A), Greek, dashes, quotes, bullets and the ellipsis, super- and subscripts,
# arrows and the comparison and arithmetic signs.
CHARACTERS = "".join(chr(c) for first, last in ((0x20, 0x7E), (0xA0, 0x17F), (0x391, 0x3C9), (0x2010, 0x2044),
                                                (0x2070, 0x209C), (0x2190, 0x2193)) for c in range(first, last + 1))
CHARACTERS += "−±×÷√∞≈≠≤≥"


def _cut(source, target, style_name):
    """Write `source` cut to CHARACTERS as `target`, named FAMILY (style `style_name`)."""
    options = subset.Options(layout_features=["*"], name_IDs=[1, 2, 3, 4, 5, 6, 16, 17])
    # matplotlib places every glyph itself: the layout tables (GSUB, GPOS, GDEF) are read by no PDF viewer
    options.drop_tables += ["FFTM"]
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
    font.close()


def install():
    """Cut the four faces of DejaVu Sans into a temporary folder (removed at exit), register them with matplotlib and
    make FAMILY the figures' font, with DejaVu Sans behind it for characters outside the cut."""
    folder = Path(tempfile.mkdtemp(prefix="metaprop-fonts-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for weight, style, style_name in FACES:
        source = font_manager.findfont(font_manager.FontProperties(family=SOURCE, weight=weight, style=style),
                                       fallback_to_default=False)
        target = folder / f"{FAMILY.replace(' ', '')}-{style_name}.ttf"
        _cut(source, target, style_name)
        font_manager.fontManager.addfont(str(target))
    matplotlib.rcParams["font.family"] = [FAMILY, SOURCE]
