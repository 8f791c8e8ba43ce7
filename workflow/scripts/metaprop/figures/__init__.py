"""Figures drawn from the results tables (forest, reviewer and posterior figures)."""

import matplotlib

from metaprop.figures import fonts

# Every text in these figures comes from config or data: shown as typed ('$x_1$', '^', '_'), never as mathtext.
matplotlib.rcParams["text.parse_math"] = False
# Glyphs unhinted, as in the PDF: at 300 dpi (35 pixels a line of text) hinting's snapping to the pixel grid does not
# help legibility, and it cost a sixth of a PNG's drawing time.
matplotlib.rcParams["text.hinting"] = "no_hinting"
fonts.install()
