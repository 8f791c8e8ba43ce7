"""Figures drawn from the results tables (forest, reviewer and posterior figures)."""

import matplotlib

# Every text in these figures comes from config or data: shown as typed ('$x_1$', '^', '_'), never as mathtext.
matplotlib.rcParams["text.parse_math"] = False
