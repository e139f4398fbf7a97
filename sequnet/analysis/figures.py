"""How the library's figures must look in the book, and a check of a finished figure against it.

A notebook shows a figure as a PNG at matplotlib's 100 dpi; the book scales any image wider than its content
column down to that width (about 800 CSS pixels at a 1,400-pixel window). A font of ``s`` points in a figure
``w`` inches wide is then shown at ``s * min(1, 800 / (100 w)) * 100 / 96`` CSS points. The figure helpers keep
their figures at most ``MAX_WIDTH_IN`` wide and their text at least ``MIN_FONT_PT``, so that every label reads at
9 pt or more (:func:`problems` checks a figure).
"""
from __future__ import annotations

NOTEBOOK_DPI = 100           # matplotlib's figure.dpi, which the inline backend keeps
CONTENT_WIDTH_PX = 800       # the book's content column at a 1,400-pixel window (CSS pixels)
CSS_PX_PER_IN = 96
MIN_RENDERED_PT = 9.0
MAX_WIDTH_IN = CONTENT_WIDTH_PX / NOTEBOOK_DPI     # wider figures are scaled down, and their text with them
MIN_FONT_PT = 9.0
# The style the helpers draw with (matplotlib.pyplot.rc_context(STYLE)): nothing below MIN_FONT_PT.
STYLE = {"font.size": 10, "axes.labelsize": 10, "axes.titlesize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
         "legend.fontsize": 9, "legend.title_fontsize": 9, "figure.titlesize": 11}


def rendered_scale(width_in: float) -> float:
    """CSS points per figure point when a figure ``width_in`` inches wide is shown in the book."""
    # The PNG is width_in * NOTEBOOK_DPI pixels, shown at most CONTENT_WIDTH_PX wide; one figure inch would be
    # CSS_PX_PER_IN pixels at its nominal size, so a point in the figure is this many CSS points on the page.
    return min(width_in * NOTEBOOK_DPI, CONTENT_WIDTH_PX) / (width_in * CSS_PX_PER_IN)


def _numeric(labels: list[str]) -> bool:
    """Whether tick labels are numbers (a quantity that needs a unit) rather than categories (model names)."""
    text = [t.replace("\u2212", "-").replace("$", "").replace("\\mathdefault{", "").replace("}", "").replace("^", "e")
            for t in labels if t]
    if not text:
        return False
    try:
        [float(t.replace(",", "").replace("10e", "1e")) for t in text]
    except ValueError:
        return False
    return True


def problems(fig) -> list[str]:
    """What in a drawn figure would read below 9 pt in the book, and every numeric axis without a label."""
    fig.canvas.draw()
    scale = rendered_scale(fig.get_figwidth())
    found = []
    for text in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() * scale < MIN_RENDERED_PT - 1e-6:
            found.append(f"{text.get_text()[:30]!r}: {text.get_fontsize():g} pt in a {fig.get_figwidth():g} in "
                         f"figure reads as {text.get_fontsize() * scale:.1f} pt")
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks = [t.get_text() for t in axis.get_ticklabels() if t.get_visible()]
            if axis.get_visible() and _numeric(ticks) and not axis.get_label_text().strip():
                found.append(f"axes {ax.get_title()!r}: the {name} axis has numbers and no label (unit)")
    return found


def styled(plot):
    """Draw the figure helper ``plot`` in STYLE (a decorator): its text is then at least MIN_FONT_PT."""
    import functools

    @functools.wraps(plot)
    def draw(*args, **kwargs):
        import matplotlib.pyplot as plt
        with plt.rc_context(STYLE):
            return plot(*args, **kwargs)
    return draw
