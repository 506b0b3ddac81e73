"""Readability check run on every figure before it is saved: no two drawn text elements (titles,
axis and tick labels, legend entries, annotations) may overlap, and none may leave the canvas."""

from __future__ import annotations

import itertools

from matplotlib.text import Text


def drawn_texts(fig) -> list[Text]:
    """The non-empty text artists the renderer actually draws (tick labels outside the view are
    kept by matplotlib but not drawn, so only the ticks the axis draws count)."""
    fig.canvas.draw()
    tick_labels, drawn_ticks = set(), set()
    for ax in fig.axes:
        for axis in ax._axis_map.values():
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update({id(tick.label1), id(tick.label2)})
            for tick in axis._update_ticks():
                drawn_ticks.update({id(tick.label1), id(tick.label2)})
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        if id(t) in tick_labels and id(t) not in drawn_ticks:
            continue
        out.append(t)
    return out


def layout_problems(fig, tolerance_px: float = 0.5) -> list[str]:
    """Each overlap or out-of-canvas text, described; empty when the figure reads cleanly."""
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    boxes = []
    for t in drawn_texts(fig):
        bb = t.get_window_extent(renderer)
        boxes.append((t.get_text().replace("\n", " "), bb.expanded(1, 1).shrunk(1, 1).padded(-tolerance_px)))
    problems = [
        f"outside the canvas: {text!r}"
        for text, bb in boxes
        if bb.x0 < canvas.x0 - 1 or bb.y0 < canvas.y0 - 1 or bb.x1 > canvas.x1 + 1 or bb.y1 > canvas.y1 + 1
    ]
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        if a.overlaps(b):
            problems.append(f"overlap: {ta!r} and {tb!r}")
    return problems
