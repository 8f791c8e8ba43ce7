"""Figures drawn from the results tables (forest, reviewer and posterior figures)."""

import matplotlib

from metaprop.figures import fonts

# Every text in these figures comes from config or data: shown as typed ('$x_1$', '^', '_'), never as mathtext.
matplotlib.rcParams["text.parse_math"] = False
fonts.install()
