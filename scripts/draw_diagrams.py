"""Draw the book's architecture diagrams into ``chapters/figures/`` (SVG, with matplotlib).

    python scripts/draw_diagrams.py            # (re)draw every diagram
    python scripts/draw_diagrams.py --check    # exit 1 if a committed SVG is not a fresh drawing
    python scripts/draw_diagrams.py --png DIR  # also save PNG twins into DIR, to look at them

Eight diagrams, one function each, sharing one small style (rounded boxes, one palette, the
same arrows): ``attention_heads`` (chapter 4), ``block`` (5), ``gpt`` (6), ``kv_cache`` (8),
``bert_inputs`` (9), ``lora`` (10), ``llama_block`` (11) and ``encoder_decoder`` (12). Each
figure is drawn in inches (the axes fill the figure and one data unit is one inch), so a font
size in points is the size on the page when the book shows the figure about 8 inches (≈ 750 px)
wide.

The output is byte-stable: a fixed ``svg.hashsalt``, no date in the metadata, and text
drawn as paths (``svg.fonttype = "path"``), so the files look the same in every browser
whatever fonts it has. Every drawing is also checked for text that overlaps other text,
leaves its box or leaves the figure; a problem is reported and makes the script fail.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "chapters" / "figures"

STYLE = {
    "svg.hashsalt": "lmkit-diagrams",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 10,
    "axes.unicode_minus": True,
}

# One restrained palette for every diagram: (fill, edge).
KINDS = {
    "tensor": ("#ffffff", "#5b6573"),  # data flowing through: inputs, outputs
    "linear": ("#dde8f4", "#35618f"),  # learned projections and embeddings
    "attn": ("#fbe5cd", "#b0661f"),  # attention
    "norm": ("#e2efdc", "#4c7d45"),  # LayerNorm
    "ffn": ("#ebe3f4", "#6b4c97"),  # feed-forward network
    "op": ("#f1f1f1", "#6f6f6f"),  # reshapes, dropout: no parameters
    "loss": ("#f7dede", "#a23d3d"),  # losses and task heads
    "frozen": ("#e4e4e4", "#7b7b7b"),  # parameters that do not train
    "train": ("#fbe5cd", "#b0661f"),  # parameters that train
}
INK = "#2b2b2b"  # arrows and text
MUTED = "#5d5d5d"  # shapes and notes
STREAM = "#35618f"  # the residual stream
HEADS = ["#4e79a7", "#e0882f", "#59a14f", "#af7aa1"]  # one colour per attention head
NEW = "#e8a25d"  # computed at this step (KV cache)
CACHED = "#c9d3de"  # read from the cache
WASTED = "#f4e3d1"  # computed but not needed

SHAPE_SIZE = 8.5  # tensor shapes on arrows
NOTE_SIZE = 8.5


class Canvas:
    """A figure whose axes fill it, in inches, plus the bookkeeping for the layout check."""

    def __init__(self, width: float, height: float) -> None:
        self.fig = plt.figure(figsize=(width, height))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.set_axis_off()
        self.inside: list[tuple[object, object]] = []  # (text, patch) that must nest
        self.boxes: list[object] = []  # boxes that no other text may touch

    # -- primitives -------------------------------------------------------------------
    def text(self, x, y, s, size=10, color=INK, ha="center", va="center", within=None, **kw):
        """Text at (x, y); ``within``: the patch it must stay inside (checked)."""
        t = self.ax.text(x, y, s, fontsize=size, color=color, ha=ha, va=va, zorder=5, **kw)
        if within is not None:
            self.inside.append((t, within))
        return t

    def box(
        self,
        cx,
        cy,
        w,
        h,
        label="",
        kind="op",
        sub=None,
        size=10,
        sub_size=8,
        fill=None,
        edge=None,
        weight="normal",
        lw=1.2,
    ):
        """A rounded box centred on (cx, cy) with a label and an optional second line."""
        f, e = KINDS[kind]
        patch = FancyBboxPatch(
            (cx - w / 2, cy - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.07",
            facecolor=fill or f,
            edgecolor=edge or e,
            lw=lw,
            zorder=2,
        )
        self.ax.add_patch(patch)
        self.boxes.append(patch)
        if label and sub:
            t1 = self.text(cx, cy + h * 0.17, label, size=size, weight=weight)
            t2 = self.text(cx, cy - h * 0.22, sub, size=sub_size, color=MUTED)
            self.inside += [(t1, patch), (t2, patch)]
        elif label:
            self.inside.append((self.text(cx, cy, label, size=size, weight=weight), patch))
        return patch

    def arrow(self, p, q, label=None, side="right", color=INK, lw=1.2, ls="-", head=True):
        """An arrow from p to q; ``label`` (a shape) beside its middle."""
        a = FancyArrowPatch(
            p,
            q,
            arrowstyle="-|>" if head else "-",
            mutation_scale=11,
            color=color,
            lw=lw,
            ls=ls,
            shrinkA=0,
            shrinkB=0,
            zorder=3,
        )
        self.ax.add_patch(a)
        if label:
            mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
            if side == "right":
                self.text(mx + 0.1, my, label, size=SHAPE_SIZE, color=MUTED, ha="left")
            elif side == "left":
                self.text(mx - 0.1, my, label, size=SHAPE_SIZE, color=MUTED, ha="right")
            elif side == "above":
                self.text(mx, my + 0.1, label, size=SHAPE_SIZE, color=MUTED, va="bottom")
            else:
                self.text(mx, my - 0.1, label, size=SHAPE_SIZE, color=MUTED, va="top")
        return a

    def line(self, xs, ys, color=INK, lw=1.2, ls="-", zorder=3):
        self.ax.plot(xs, ys, color=color, lw=lw, ls=ls, solid_capstyle="butt", zorder=zorder)

    def plus(self, cx, cy, r=0.13, color=INK):
        """A ⊕ node (addition)."""
        self.ax.add_patch(Circle((cx, cy), r, facecolor="white", edgecolor=color, lw=1.3, zorder=4))
        self.line([cx - r * 0.6, cx + r * 0.6], [cy, cy], color=color, lw=1.3, zorder=5)
        self.line([cx, cx], [cy - r * 0.6, cy + r * 0.6], color=color, lw=1.3, zorder=5)

    def grid(self, x0, y_top, rows, cols, colours, s=0.2, lw=0.8, edge="#6f6f6f"):
        """A rows × cols matrix of cells of side s, top-left corner at (x0, y_top);
        ``colours(i, j)`` gives each cell's fill (None: empty)."""
        for i in range(rows):
            for j in range(cols):
                c = colours(i, j)
                self.ax.add_patch(
                    Rectangle(
                        (x0 + j * s, y_top - (i + 1) * s),
                        s,
                        s,
                        facecolor=c or "white",
                        edgecolor=edge,
                        lw=lw,
                        zorder=2,
                    )
                )

    # -- output -----------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Text that overlaps other text, sticks out of its box, or leaves the figure."""
        self.fig.canvas.draw()
        renderer = self.fig.canvas.get_renderer()
        fig_box = self.fig.bbox
        texts = [t for t in self.ax.texts if t.get_text().strip()]
        boxes = [t.get_window_extent(renderer) for t in texts]
        found = []
        for t, b in zip(texts, boxes, strict=True):
            if b.x0 < fig_box.x0 or b.y0 < fig_box.y0 or b.x1 > fig_box.x1 or b.y1 > fig_box.y1:
                found.append(f"{t.get_text()!r} leaves the figure")
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                a, b = boxes[i], boxes[j]
                ox = min(a.x1, b.x1) - max(a.x0, b.x0)
                oy = min(a.y1, b.y1) - max(a.y0, b.y0)
                if ox > 1 and oy > 1:
                    found.append(f"{texts[i].get_text()!r} overlaps {texts[j].get_text()!r}")
        home = {id(t): patch for t, patch in self.inside}
        for t, patch in self.inside:
            b, p = t.get_window_extent(renderer), patch.get_window_extent(renderer)
            if b.x0 < p.x0 + 2 or b.x1 > p.x1 - 2 or b.y0 < p.y0 + 1 or b.y1 > p.y1 - 1:
                found.append(f"{t.get_text()!r} does not fit in its box")
        for t, b in zip(texts, boxes, strict=True):
            for patch in self.boxes:
                if patch is home.get(id(t)):
                    continue
                p = patch.get_window_extent(renderer)
                if min(b.x1, p.x1) - max(b.x0, p.x0) > 0 and min(b.y1, p.y1) - max(b.y0, p.y0) > 0:
                    found.append(f"{t.get_text()!r} touches a box it is not in")
        return found

    def svg(self) -> bytes:
        for artist in self.ax.get_children():
            artist.set_clip_on(False)  # everything lies inside the axes: no clip paths needed
        buf = io.BytesIO()
        self.fig.savefig(buf, format="svg", metadata={"Date": None})
        return buf.getvalue()


# ----------------------------------------------------------------------------------------
# Chapter 4: multi-head self-attention
# ----------------------------------------------------------------------------------------
def attention_heads() -> Canvas:
    cv = Canvas(8.0, 8.35)
    cx, h = 4.0, len(HEADS)
    cv.box(cx, 7.95, 1.9, 0.42, "x", kind="tensor", sub="T token vectors of width C", size=11)
    cv.arrow((cx, 7.74), (cx, 7.27), "(B, T, C)")
    cv.box(cx, 7.02, 3.3, 0.5, "qkv = Linear(C, 3C)", kind="linear", sub="one fused projection")

    # q, k, v: C channels each, h slices of d_k channels.
    bar_w, bar_h, bar_y = 1.8, 0.3, 6.12
    centres = [1.75, 4.0, 6.25]
    cv.text(cx + 0.1, 6.55, "(B, T, 3C)", size=SHAPE_SIZE, color=MUTED, ha="left")
    for name, bx in zip(["q", "k", "v"], centres, strict=True):
        cv.arrow((cx + (bx - cx) * 0.25, 6.77), (bx, bar_y + bar_h / 2 + 0.02))
        seg = bar_w / h
        for i in range(h):
            x0 = bx - bar_w / 2 + i * seg
            cv.ax.add_patch(
                Rectangle(
                    (x0, bar_y - bar_h / 2),
                    seg,
                    bar_h,
                    facecolor=HEADS[i],
                    alpha=0.35,
                    edgecolor="none",
                    zorder=2,
                )
            )
            cv.ax.add_patch(
                Rectangle(
                    (x0, bar_y - bar_h / 2),
                    seg,
                    bar_h,
                    facecolor="none",
                    edgecolor="#6f6f6f",
                    lw=0.8,
                    zorder=3,
                )
            )
            cv.text(x0 + seg / 2, bar_y, "$d_k$", size=8, color=INK)
        cv.text(bx - bar_w / 2 - 0.12, bar_y, name, size=12, ha="right", weight="bold")

    # Split heads.
    cv.box(
        cx,
        5.32,
        7.0,
        0.5,
        "split heads: view (B, T, h, $d_k$), then transpose(1, 2) → (B, h, T, $d_k$)",
        kind="op",
        sub=f"$d_k$ = C / h;  drawn with h = {h}: head i gets the i-th slice of $d_k$ channels of q, k and v",
        size=9.5,
    )
    for bx in centres:
        cv.arrow((bx, bar_y - bar_h / 2), (bx, 5.57), "(B, T, C)")

    # Every head attends on its own.
    top, bottom = 4.75, 2.47
    container = FancyBboxPatch(
        (0.35, bottom),
        7.3,
        top - bottom,
        boxstyle="round,pad=0,rounding_size=0.1",
        facecolor=KINDS["attn"][0],
        edgecolor=KINDS["attn"][1],
        lw=1.2,
        zorder=1,
    )
    cv.ax.add_patch(container)
    cv.inside.append(
        (
            cv.text(
                cx,
                4.53,
                r"each head:  $\mathrm{softmax}\left(q\,k^{\top} / \sqrt{d_k} + M\right)\,v$",
                size=10.5,
            ),
            container,
        )
    )
    cv.inside.append(
        (
            cv.text(
                cx,
                4.24,
                "M: the causal mask, −∞ above the diagonal (token t sees tokens ≤ t)",
                size=NOTE_SIZE,
                color=MUTED,
            ),
            container,
        )
    )
    cell_w, gap = 1.6, 0.17
    x_first = cx - (h * cell_w + (h - 1) * gap) / 2 + cell_w / 2
    heads_x = [x_first + i * (cell_w + gap) for i in range(h)]
    cy = 3.36
    rng = np.random.default_rng(0)
    n = 5  # tokens drawn in each head's attention pattern
    for i, hx in enumerate(heads_x):
        cell = cv.box(hx, cy, cell_w, 1.1, fill="white", edge=HEADS[i], kind="op", lw=1.4)
        cv.text(hx, cy + 0.4, f"head {i + 1}", size=9, color=HEADS[i], weight="bold", within=cell)
        for r, name in enumerate("qkv"):
            y = cy + 0.12 - r * 0.27
            cv.ax.add_patch(
                Rectangle(
                    (hx - 0.7, y - 0.08),
                    0.3,
                    0.16,
                    facecolor=HEADS[i],
                    alpha=0.35,
                    edgecolor="#6f6f6f",
                    lw=0.7,
                    zorder=3,
                )
            )
            cv.text(hx - 0.35, y, f"${name}_{i + 1}$", size=8, ha="left", within=cell)
        # A causal pattern: row t spreads its weight over tokens ≤ t.
        w = np.tril(rng.random((n, n)) + 0.15)
        w = w / w.sum(axis=1, keepdims=True)
        s = 0.12
        gx, gy = hx + 0.05, cy + 0.3

        def fill(r, c, w=w, colour=HEADS[i]):
            if c > r:
                return None
            a = min(1.0, 0.15 + 1.5 * w[r, c])  # darker = more weight
            return to_hex(np.array(to_rgb(colour)) * a + (1 - a))

        cv.grid(gx, gy, n, n, fill, s=s, lw=0.5, edge="#9a9a9a")
        cv.text(hx + 0.05 + n * s / 2, cy - 0.42, "weights T × T", size=8, color=MUTED, within=cell)
    for hx in heads_x:
        cv.arrow((hx, 5.07), (hx, top))
    cv.text(heads_x[-1] + 0.1, 4.91, "(B, h, T, $d_k$)", size=SHAPE_SIZE, color=MUTED, ha="left")
    cv.text(
        cx,
        2.62,
        "all heads at once: one batched matrix product over (B, h)",
        size=NOTE_SIZE,
        color=MUTED,
    )

    # Merge heads and project.
    for hx in heads_x:
        cv.arrow((hx, bottom), (hx, 2.06))
    cv.box(
        cx,
        1.82,
        7.0,
        0.48,
        "merge heads: transpose(1, 2) → (B, T, h, $d_k$), reshape → (B, T, C)",
        kind="op",
        sub="the heads' outputs side by side: head 1's $d_k$ channels, then head 2's, …",
        size=9.5,
    )
    cv.text(heads_x[-1] + 0.1, 2.27, "(B, h, T, $d_k$)", size=SHAPE_SIZE, color=MUTED, ha="left")
    cv.arrow((cx, 1.58), (cx, 1.2), "(B, T, C)")
    cv.box(cx, 0.97, 3.3, 0.46, "proj = Linear(C, C)", kind="linear", sub="mixes the heads")
    cv.arrow((cx, 0.74), (cx, 0.36))
    cv.text(cx, 0.2, "output (B, T, C)", size=10)
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 5: the block, pre-norm and post-norm
# ----------------------------------------------------------------------------------------
def _frame(cv: Canvas, x, top, bottom, width, kind="ffn"):
    """A rounded frame centred on ``x`` that holds other boxes; returns its patch."""
    frame = FancyBboxPatch(
        (x - width / 2, bottom),
        width,
        top - bottom,
        boxstyle="round,pad=0,rounding_size=0.08",
        facecolor=KINDS[kind][0],
        edgecolor=KINDS[kind][1],
        lw=1.2,
        zorder=1,
    )
    cv.ax.add_patch(frame)
    return frame


def _ffn_frame(cv: Canvas, x, top, bottom, title: str) -> None:
    """The framed, titled box that holds a feed-forward network's layers."""
    frame = _frame(cv, x, top, bottom, 2.1)
    cv.inside.append((cv.text(x + 0.97, top - 0.13, title, size=8.5, ha="right"), frame))


def _ffn(cv: Canvas, x, top, activation="GELU") -> float:
    """The feed-forward network as three boxes in a frame whose top is ``top``; returns the
    frame's bottom."""
    labels = [("Linear d → 4d", "linear"), (activation, "op"), ("Linear 4d → d", "linear")]
    ys = [top - 0.42 - k * 0.5 for k in range(3)]
    bottom = top - 1.72
    _ffn_frame(cv, x, top, bottom, "FFN")
    for k, ((label, kind), y) in enumerate(zip(labels, ys, strict=True)):
        cv.box(x, y, 1.7, 0.34, label, kind=kind, size=9)
        if k:
            cv.arrow((x, ys[k - 1] - 0.17), (x, y + 0.17))
    return bottom


def _stream(cv: Canvas, x, y0, y1, arrow=False):
    """A piece of the residual stream from y0 down to y1."""
    if arrow:
        cv.arrow((x, y0), (x, y1), color=STREAM, lw=2.6)
    else:
        cv.line([x, x], [y0, y1], color=STREAM, lw=2.6, zorder=1)


def _branch(cv: Canvas, xs, xb, y_tap, y_end):
    """The line that leaves the stream at y_tap and goes right to a branch, down to y_end."""
    cv.line([xs, xb], [y_tap, y_tap])
    cv.arrow((xb, y_tap), (xb, y_end))


def _back(cv: Canvas, xs, xb, y_from, y_plus):
    """The branch's output, from y_from down and back left into a ⊕ on the stream."""
    cv.line([xb, xb], [y_from, y_plus])
    cv.arrow((xb, y_plus), (xs + 0.13, y_plus))
    cv.plus(xs, y_plus)


def block() -> Canvas:
    cv = Canvas(8.0, 7.25)
    ffn_top, y_tap1 = 3.22, 5.9
    for title, formula, mid in [
        ("Pre-norm (GPT-2)", "x = x + Attn(LN(x));  then  x = x + FFN(LN(x))", 2.0),
        (
            "Post-norm (original Transformer, BERT)",
            "x = LN(x + Attn(x));  then  x = LN(x + FFN(x))",
            6.0,
        ),
    ]:
        cv.text(mid, 7.02, title, size=11, weight="bold")
        cv.text(mid, 6.72, formula, size=8.5, color=MUTED)

    # Pre-norm: the stream runs straight from input to output; the branches only add to it.
    xs, xb = 0.75, 2.45
    cv.text(xs - 0.08, 6.35, "x  (B, T, d)", size=9, ha="left", color=STREAM)
    _stream(cv, xs, 6.2, 1.3)
    _branch(cv, xs, xb, y_tap1, 5.69)
    cv.box(xb, 5.5, 1.7, 0.38, "LayerNorm", kind="norm", size=9.5)
    cv.arrow((xb, 5.31), (xb, 5.12))
    cv.box(xb, 4.8, 2.1, 0.64, "multi-head attention", kind="attn", sub="causal", size=9.5)
    _back(cv, xs, xb, 4.48, 4.25)
    _branch(cv, xs, xb, 3.95, 3.79)
    cv.box(xb, 3.6, 1.7, 0.38, "LayerNorm", kind="norm", size=9.5)
    cv.arrow((xb, 3.41), (xb, ffn_top))
    bottom = _ffn(cv, xb, ffn_top)
    _back(cv, xs, xb, bottom, 1.3)
    _stream(cv, xs, 1.17, 0.6, arrow=True)
    cv.text(xs - 0.08, 0.45, "x  (B, T, d)", size=9, ha="left", color=STREAM)
    cv.text(2.0, 0.15, "nothing but ⊕ on the residual stream", size=8.5, color=MUTED)

    # Post-norm: every LayerNorm sits on the stream itself.
    xs, xb = 4.75, 6.55
    cv.text(xs - 0.08, 6.35, "x  (B, T, d)", size=9, ha="left", color=STREAM)
    _stream(cv, xs, 6.2, 4.62)
    _branch(cv, xs, xb, y_tap1, 5.5)
    cv.box(xb, 5.18, 2.1, 0.64, "multi-head attention", kind="attn", sub="bidirectional in BERT")
    _back(cv, xs, xb, 4.86, 4.62)
    _stream(cv, xs, 4.49, 4.38)
    cv.box(xs, 4.2, 1.2, 0.36, "LayerNorm", kind="norm", size=9.5, edge=STREAM, lw=1.8)
    _stream(cv, xs, 4.02, 1.3)
    _branch(cv, xs, xb, 3.75, ffn_top)
    bottom = _ffn(cv, xb, ffn_top, activation="GELU (ReLU in 2017)")
    _back(cv, xs, xb, bottom, 1.3)
    _stream(cv, xs, 1.17, 1.1)
    cv.box(xs, 0.93, 1.2, 0.34, "LayerNorm", kind="norm", size=9.5, edge=STREAM, lw=1.8)
    _stream(cv, xs, 0.76, 0.56, arrow=True)
    cv.text(xs - 0.08, 0.45, "x  (B, T, d)", size=9, ha="left", color=STREAM)
    cv.text(6.0, 0.15, "every LayerNorm sits on the residual stream", size=8.5, color=MUTED)
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 6: the whole GPT
# ----------------------------------------------------------------------------------------
def gpt() -> Canvas:
    cv = Canvas(8.0, 7.7)
    cx, xt, xp = 4.4, 3.2, 5.8
    cv.box(xt, 7.35, 1.9, 0.42, "token ids  idx", kind="tensor")
    cv.box(xp, 7.35, 1.9, 0.42, "positions 0 … T−1", kind="tensor")
    cv.arrow((xt, 7.14), (xt, 6.78), "(B, T)")
    cv.arrow((xp, 7.14), (xp, 6.78), "(T,)")
    cv.box(xt, 6.5, 2.3, 0.56, "token embedding", kind="linear", sub="embed.tok:  V × d")
    cv.box(xp, 6.5, 2.3, 0.56, "position embedding", kind="linear", sub="embed.pos:  $T_{max}$ × d")
    cv.plus(cx, 5.75)
    cv.arrow((xt, 6.22), (cx - 0.1, 5.84))
    cv.arrow((xp, 6.22), (cx + 0.1, 5.84))
    cv.text(xt + 0.15, 5.95, "(B, T, d)", size=SHAPE_SIZE, color=MUTED, ha="right")
    cv.text(
        xp - 0.15, 5.95, "(T, d), same for every sequence", size=SHAPE_SIZE, color=MUTED, ha="left"
    )
    cv.arrow((cx, 5.62), (cx, 5.33))
    cv.box(cx, 5.13, 1.6, 0.38, "dropout", kind="op", sub=None, size=9.5)
    cv.arrow((cx, 4.94), (cx, 4.62), "(B, T, d)")
    # L blocks, drawn as a stack.
    for k in (2, 1):
        cv.ax.add_patch(
            FancyBboxPatch(
                (cx - 1.7 + 0.07 * k, 3.72 + 0.07 * k),
                3.4,
                0.84,
                boxstyle="round,pad=0,rounding_size=0.07",
                facecolor=KINDS["attn"][0],
                edgecolor=KINDS["attn"][1],
                lw=1.0,
                zorder=1.5 - 0.1 * k,
            )
        )
    cv.box(
        cx,
        4.14,
        3.4,
        0.84,
        "L × Transformer block",
        kind="attn",
        sub="pre-norm, causal attention\nblocks[0] → … → blocks[L−1]",
        size=10.5,
    )
    cv.arrow((cx, 3.72), (cx, 3.37), "(B, T, d)")
    cv.box(cx, 3.15, 2.1, 0.44, "final LayerNorm", kind="norm", sub=None, size=9.5)
    cv.text(cx + 1.13, 3.15, "ln_f", size=8.5, color=MUTED, ha="left", family="DejaVu Sans Mono")
    cv.arrow((cx, 2.93), (cx, 2.6), "(B, T, d)")
    cv.box(
        cx,
        2.3,
        3.0,
        0.6,
        "head: Linear d → V, no bias",
        kind="linear",
        sub="weight = embed.tok.weight (tied)",
    )
    cv.arrow((cx, 2.0), (cx, 1.63))
    cv.box(cx, 1.42, 1.9, 0.42, "logits", kind="tensor", sub=None)
    cv.text(cx + 1.05, 1.42, "(B, T, V)", size=SHAPE_SIZE, color=MUTED, ha="left")
    cv.arrow((cx, 1.21), (cx, 0.88))
    cv.box(
        cx,
        0.58,
        4.0,
        0.6,
        "next-token loss: cross-entropy",
        kind="loss",
        sub="targets = idx shifted by one:  $y_t = x_{t+1}$",
    )
    # Tied weights: the head's matrix is the token embedding's.
    x_side = 1.0
    cv.line([xt - 1.15, x_side], [6.5, 6.5], color=KINDS["linear"][1], ls=(0, (4, 3)))
    cv.line([x_side, x_side], [6.5, 2.3], color=KINDS["linear"][1], ls=(0, (4, 3)))
    cv.arrow((x_side, 2.3), (cx - 1.5, 2.3), color=KINDS["linear"][1], ls=(0, (4, 3)), head=True)
    cv.text(
        x_side - 0.12,
        4.4,
        "weight tying: the head reuses this V × d matrix",
        size=8.5,
        color=KINDS["linear"][1],
        rotation=90,
    )
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 8: the KV cache
# ----------------------------------------------------------------------------------------
def _matrix(cv, x0, y_mid, rows, cols, colours, title, shape, s=0.2):
    """A matrix centred vertically on y_mid with a title above and its shape below."""
    top = y_mid + rows * s / 2
    cv.grid(x0, top, rows, cols, colours, s=s)
    cx = x0 + cols * s / 2
    cv.text(cx, top + 0.16, title, size=9.5)
    cv.text(cx, top - rows * s - 0.15, shape, size=SHAPE_SIZE, color=MUTED)
    return x0 + cols * s


def kv_cache() -> Canvas:
    cv = Canvas(8.0, 6.1)
    t, dk, s = 5, 3, 0.2
    words = ["a", "cat", "sat", "on", "my"]

    def panel(y_mid, cached: bool):
        x = 0.35
        # Tokens that go through the model at this step.
        rows = 1 if cached else t
        first = t - rows
        for r in range(rows):
            y = y_mid + ((rows - 1) / 2 - r) * s  # level with its row of Q
            cv.box(x + 0.3, y, 0.6, s * 0.9, words[first + r], kind="tensor", size=8.5)
        cv.text(
            x + 0.3,
            y_mid + rows * s / 2 + 0.16,
            "new token" if cached else "the prefix",
            size=9.5,
        )
        x += 0.6
        cv.arrow((x + 0.05, y_mid), (x + 0.6, y_mid))
        cv.text(x + 0.33, y_mid - 0.2, "$W_q, W_k, W_v$", size=8, color=MUTED, va="top")
        x += 0.7

        def rowfill(r, c):
            if cached:
                return NEW
            return NEW if r == t - 1 else WASTED

        x = _matrix(
            cv,
            x,
            y_mid,
            rows,
            dk,
            rowfill,
            "$q_t$" if cached else "Q",
            "1 × $d_k$" if cached else "t × $d_k$",
        )
        cv.text(x + 0.17, y_mid, "×", size=12)
        x += 0.34

        def kfill(r, c):
            return NEW if (c == t - 1 or not cached) else CACHED

        x = _matrix(cv, x, y_mid, dk, t, kfill, "$K^{\\top}$", "$d_k$ × t")
        cv.arrow((x + 0.08, y_mid), (x + 0.72, y_mid))
        cv.text(x + 0.4, y_mid + 0.1, "softmax", size=8, color=MUTED, va="bottom")
        cv.text(
            x + 0.4,
            y_mid - 0.1,
            "÷$\\sqrt{d_k}$" if cached else "÷$\\sqrt{d_k}$, +M",
            size=8,
            color=MUTED,
            va="top",
        )
        x += 0.8

        def wfill(r, c):
            if cached:
                return NEW
            if c > r:
                return None
            return NEW if r == t - 1 else WASTED

        x = _matrix(cv, x, y_mid, rows, t, wfill, "weights", "1 × t" if cached else "t × t")
        cv.text(x + 0.17, y_mid, "×", size=12)
        x += 0.34

        def vfill(r, c):
            return NEW if (r == t - 1 or not cached) else CACHED

        x = _matrix(cv, x, y_mid, t, dk, vfill, "V", "t × $d_k$")
        cv.text(x + 0.17, y_mid, "=", size=12)
        x += 0.34
        _matrix(cv, x, y_mid, rows, dk, rowfill, "out", "1 × $d_k$" if cached else "t × $d_k$")

    # Without a cache.
    cv.text(
        0.3,
        5.9,
        "Without a cache: step t runs the whole prefix again",
        size=10.5,
        ha="left",
        weight="bold",
    )
    cv.text(7.75, 5.9, "one head of one layer, t = 5", size=NOTE_SIZE, color=MUTED, ha="right")
    panel(4.75, cached=False)
    cv.text(
        0.3,
        3.8,
        "t rows of q, k, v in every layer, though t − 1 of them were computed at step t − 1;\n"
        "only the last row of out predicts token t + 1",
        size=NOTE_SIZE,
        color=MUTED,
        ha="left",
        va="top",
    )
    # With a cache.
    cv.text(
        0.3,
        3.1,
        "With a KV cache: step t runs the new token only",
        size=10.5,
        ha="left",
        weight="bold",
    )
    panel(2.1, cached=True)
    cv.text(
        0.3,
        1.25,
        "$k_t$ and $v_t$ are appended to the cache (the new column of $K^{\\top}$, the new row of "
        "V). The cache holds\nK and V of every layer and head, (B, h, t, $d_k$), one row more at "
        "every step. The projections and the\nFFN now run on 1 token instead of t; attention "
        "still reads all t cached keys and values.",
        size=NOTE_SIZE,
        color=MUTED,
        ha="left",
        va="top",
    )
    # Legend.
    y, x = 0.22, 0.35
    for colour, label in [
        (NEW, "computed at this step"),
        (CACHED, "read from the cache"),
        (WASTED, "computed, not needed"),
        ("white", "masked (−∞)"),
    ]:
        cv.ax.add_patch(
            Rectangle((x, y - 0.08), 0.16, 0.16, facecolor=colour, edgecolor="#6f6f6f", lw=0.8)
        )
        label_text = cv.text(x + 0.24, y, label, size=NOTE_SIZE, ha="left")
        cv.fig.canvas.draw()
        width = label_text.get_window_extent().width / cv.fig.dpi
        x += 0.24 + width + 0.4
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 9: BERT's input
# ----------------------------------------------------------------------------------------
def bert_inputs() -> Canvas:
    tokens = ["[CLS]", "the", "cat", "[MASK]", "[SEP]", "it", "[MASK]", "##ed", "[SEP]"]
    targets = {3: "sat", 6: "purr"}  # what the masked positions held
    segment = ["A"] * 5 + ["B"] * 4
    cv = Canvas(8.2, 7.3)
    x0, step, w = 1.62, 0.73, 0.66
    xs = [x0 + step * (i + 0.5) for i in range(len(tokens))]
    label_x = x0 - 0.12
    rows = {"input": 6.55, "tok": 5.8, "seg": 5.05, "pos": 4.3}
    seg_fill = {"A": ("#f5e8c4", "#9c7a22"), "B": ("#d7ecea", "#2e7a74")}

    # Which sentence each token belongs to.
    for name, first, last in [("sentence A", 1, 3), ("sentence B", 5, 7)]:
        y = rows["input"] + 0.36
        cv.line([xs[first] - w / 2, xs[last] + w / 2], [y, y], color=seg_fill[name[-1]][1])
        for x in (xs[first] - w / 2, xs[last] + w / 2):
            cv.line([x, x], [y, y - 0.07], color=seg_fill[name[-1]][1])
        cv.text(xs[first + 1], y + 0.15, name, size=8.5, color=seg_fill[name[-1]][1])

    cv.text(label_x, rows["input"], "Input", size=9.5, ha="right", weight="bold")
    cv.text(label_x, rows["tok"], "Token\nembeddings", size=9, ha="right")
    cv.text(label_x, rows["seg"], "Segment\nembeddings", size=9, ha="right")
    cv.text(label_x, rows["pos"], "Position\nembeddings", size=9, ha="right")
    for i, (x, tok) in enumerate(zip(xs, tokens, strict=True)):
        masked = i in targets
        cv.box(
            x,
            rows["input"],
            w,
            0.42,
            tok,
            kind="tensor",
            size=8.5,
            fill=KINDS["loss"][0] if masked else None,
            edge=KINDS["loss"][1] if masked else None,
        )
        name = "$E_{\\mathrm{" + tok.replace("##", r"\#\#}\mathrm{") + "}}$"
        cv.box(x, rows["tok"], w, 0.42, name, kind="linear", size=9)
        cv.text(x, (rows["tok"] + rows["seg"]) / 2, "+", size=11)
        f, e = seg_fill[segment[i]]
        cv.box(x, rows["seg"], w, 0.42, f"$E_{segment[i]}$", fill=f, edge=e, size=9)
        cv.text(x, (rows["seg"] + rows["pos"]) / 2, "+", size=11)
        cv.box(x, rows["pos"], w, 0.42, f"$E_{i}$", kind="linear", size=9)
        cv.arrow((x, rows["pos"] - 0.21), (x, 3.72))
    mid = (xs[0] + xs[-1]) / 2
    span = xs[-1] - xs[0] + w
    cv.box(mid, 3.5, span, 0.44, "sum → LayerNorm → dropout", kind="norm", size=9.5)
    cv.text(label_x, 3.5, "(B, T, d)", size=SHAPE_SIZE, ha="right", color=MUTED)
    cv.arrow((mid, 3.28), (mid, 3.02))
    cv.box(
        mid,
        2.75,
        span,
        0.54,
        "L × post-norm encoder block",
        kind="attn",
        sub="bidirectional: every token attends to every (non-padding) token",
        size=9.5,
    )
    for i, x in enumerate(xs):
        cv.arrow((x, 2.48), (x, 2.2))
        cv.box(x, 2.0, w, 0.38, f"$h_{i}$", kind="tensor", size=9)
    cv.text(label_x, 2.0, "outputs", size=9, ha="right")
    # NSP: the [CLS] vector through the pooler.
    px = (xs[0] + xs[1]) / 2 + 0.12
    cv.arrow((xs[0], 1.81), (xs[0], 1.5))
    cv.box(px, 1.3, 1.6, 0.4, "pooler: tanh(W h + b)", kind="linear", size=8.5)
    cv.arrow((xs[0], 1.1), (xs[0], 0.82))
    cv.box(px, 0.6, 1.6, 0.44, "NSP head", kind="loss", sub="IsNext / NotNext", size=9)
    # MLM: the masked positions.
    left, right = xs[3] - w / 2, xs[-1] + w / 2
    for i in targets:
        cv.arrow((xs[i], 1.81), (xs[i], 1.5))
    cv.box(
        (left + right) / 2,
        1.3,
        right - left,
        0.4,
        "MLM head: dense → GELU → LayerNorm → tied token embeddings + bias",
        kind="loss",
        size=8,
    )
    for i, word in targets.items():
        cv.arrow((xs[i], 1.1), (xs[i], 0.82))
        cv.box(xs[i], 0.62, w, 0.38, f"“{word}”", kind="tensor", size=9)
    cv.text(
        (xs[3] + xs[6]) / 2,
        0.62,
        "predict the\noriginal tokens",
        size=8,
        color=MUTED,
    )
    cv.text(
        (left + right) / 2,
        0.2,
        "loss at the selected positions only (80 % [MASK], 10 % random, 10 % kept)",
        size=8,
        color=MUTED,
    )
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 10: LoRA
# ----------------------------------------------------------------------------------------
def lora() -> Canvas:
    cv = Canvas(7.6, 5.6)
    cx, xw, xl = 3.0, 1.75, 4.35
    cv.box(cx, 5.2, 1.4, 0.42, "x", kind="tensor", size=11)
    cv.text(cx - 0.8, 5.2, "(…, $d_{in}$)", size=SHAPE_SIZE, color=MUTED, ha="right")
    cv.line([cx, cx], [4.99, 4.75])
    cv.line([xw, xl], [4.75, 4.75])
    cv.arrow((xw, 4.75), (xw, 4.35))
    cv.arrow((xl, 4.75), (xl, 4.45))
    # Frozen W.
    w_box = cv.box(xw, 3.2, 2.0, 2.3, "W", kind="frozen", size=16, weight="bold")
    cv.text(xw, 2.75, "$d_{out}$ × $d_{in}$", size=9.5, within=w_box)
    cv.text(xw, 2.45, "frozen (pre-trained)", size=8.5, color=MUTED, within=w_box)
    # A: d_in → r, B: r → d_out.
    fill, edge = KINDS["train"]
    top_w, neck = 1.5, 0.36
    a = Polygon(
        [
            (xl - top_w / 2, 4.45),
            (xl + top_w / 2, 4.45),
            (xl + neck / 2, 3.45),
            (xl - neck / 2, 3.45),
        ],
        closed=True,
        facecolor=fill,
        edgecolor=edge,
        lw=1.2,
        zorder=2,
    )
    b = Polygon(
        [
            (xl - neck / 2, 3.25),
            (xl + neck / 2, 3.25),
            (xl + top_w / 2, 2.25),
            (xl - top_w / 2, 2.25),
        ],
        closed=True,
        facecolor=fill,
        edgecolor=edge,
        lw=1.2,
        zorder=2,
    )
    cv.ax.add_patch(a)
    cv.ax.add_patch(b)
    cv.text(xl, 4.1, "A", size=13, weight="bold")
    cv.text(xl, 2.6, "B", size=13, weight="bold")
    cv.text(xl + 0.3, 3.35, "r", size=10, ha="left", style="italic")
    cv.arrow((xl, 3.45), (xl, 3.25), head=False)
    tx = xl + 0.95
    cv.text(tx, 4.15, "A: r × $d_{in}$, trainable", size=9, ha="left")
    cv.text(tx, 3.88, "starts random", size=8.5, color=MUTED, ha="left")
    cv.text(tx, 2.85, "B: $d_{out}$ × r, trainable", size=9, ha="left")
    cv.text(tx, 2.58, "zero at first, so the layer", size=8.5, color=MUTED, ha="left")
    cv.text(tx, 2.33, "begins as the pre-trained one", size=8.5, color=MUTED, ha="left")
    cv.arrow((xl, 2.25), (xl, 1.95))
    cv.box(xl, 1.77, 0.8, 0.34, "× α / r", kind="op", size=9.5)
    cv.arrow((xl, 1.6), (cx + 0.1, 1.18))
    cv.arrow((xw, 2.05), (cx - 0.1, 1.18))
    cv.plus(cx, 1.08)
    cv.arrow((cx, 0.95), (cx, 0.68))
    cv.box(cx, 0.47, 1.4, 0.42, "y", kind="tensor", size=11)
    cv.text(cx - 0.8, 0.47, "(…, $d_{out}$)", size=SHAPE_SIZE, color=MUTED, ha="right")
    fx = 4.35
    cv.text(fx, 1.08, r"$y = W x + \frac{\alpha}{r}\, B A x$", size=12.5, ha="left")
    notes = [
        "r ≪ $d_{in}$, $d_{out}$: training moves r($d_{in}$ + $d_{out}$) numbers",
        "instead of $d_{out}$ · $d_{in}$",
        "after training: W′ = W + (α / r) B A, no extra cost",
    ]
    for k, note in enumerate(notes):
        cv.text(fx, 0.68 - 0.25 * k, note, size=8.5, color=MUTED, ha="left")
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 11: a Llama block beside GPT-2's
# ----------------------------------------------------------------------------------------
def _swiglu(cv: Canvas, x, top) -> float:
    """SwiGLU in a frame whose top is ``top`` (as tall as :func:`_ffn`); returns its bottom."""
    bottom = top - 1.72
    _ffn_frame(cv, x, top, bottom, "SwiGLU")
    y1, y2, y3 = top - 0.42, top - 0.92, top - 1.42
    cv.box(x - 0.47, y1, 0.86, 0.34, "gate", kind="linear", size=9)
    cv.box(x + 0.47, y1, 0.86, 0.34, "up", kind="linear", size=9)
    cv.box(x, y2, 1.7, 0.34, "silu(gate) ⊙ up", kind="op", size=9)
    cv.arrow((x - 0.47, y1 - 0.17), (x - 0.47, y2 + 0.17))
    cv.arrow((x + 0.47, y1 - 0.17), (x + 0.47, y2 + 0.17))
    cv.box(x, y3, 1.7, 0.34, "down  d_ff → d", kind="linear", size=9)
    cv.arrow((x, y2 - 0.17), (x, y3 + 0.17))
    return bottom


def llama_block() -> Canvas:
    cv = Canvas(8.0, 7.25)
    ffn_top = 3.22
    for title, formula, mid in [
        ("GPT-2 block", "token + learned position embeddings go in", 2.0),
        ("Llama / SmolLM2 block", "token embeddings only: RoPE rotates q and k", 6.0),
    ]:
        cv.text(mid, 7.02, title, size=11, weight="bold")
        cv.text(mid, 6.72, formula, size=8.5, color=MUTED)
    for xs, xb, right in [(0.75, 2.45, False), (4.75, 6.45, True)]:
        cv.text(xs - 0.08, 6.35, "x  (B, T, d)", size=9, ha="left", color=STREAM)
        _stream(cv, xs, 6.2, 1.3)
        _branch(cv, xs, xb, 5.9, 5.69)
        norm = "RMSNorm" if right else "LayerNorm"
        cv.box(xb, 5.5, 1.7, 0.38, norm, kind="norm", size=9.5)
        cv.arrow((xb, 5.31), (xb, 5.12))
        if right:
            cv.box(
                xb,
                4.8,
                2.1,
                0.64,
                "grouped-query attention",
                kind="attn",
                sub="9 q heads, 3 kv heads, RoPE",
                size=9.5,
            )
        else:
            cv.box(
                xb,
                4.8,
                2.1,
                0.64,
                "multi-head attention",
                kind="attn",
                sub="12 q, k, v heads",
                size=9.5,
            )
        _back(cv, xs, xb, 4.48, 4.25)
        _branch(cv, xs, xb, 3.95, 3.79)
        cv.box(xb, 3.6, 1.7, 0.38, norm, kind="norm", size=9.5)
        cv.arrow((xb, 3.41), (xb, ffn_top))
        bottom = _swiglu(cv, xb, ffn_top) if right else _ffn(cv, xb, ffn_top)
        _back(cv, xs, xb, bottom, 1.3)
        _stream(cv, xs, 1.17, 0.6, arrow=True)
        cv.text(xs - 0.08, 0.45, "x  (B, T, d)", size=9, ha="left", color=STREAM)
    cv.text(2.0, 0.15, "biases in every Linear and LayerNorm", size=8.5, color=MUTED)
    cv.text(6.0, 0.15, "no biases; d_ff = 8d/3 costs what 4d did", size=8.5, color=MUTED)
    return cv


# ----------------------------------------------------------------------------------------
# Chapter 12: the encoder–decoder Transformer
# ----------------------------------------------------------------------------------------
def _stack(cv: Canvas, cx, cy, w, h, kind="attn", depth=2) -> None:
    """The shadows behind a box that stands for N repeated blocks."""
    for k in range(depth, 0, -1):
        cv.ax.add_patch(
            FancyBboxPatch(
                (cx - w / 2 + 0.07 * k, cy - h / 2 + 0.07 * k),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.07",
                facecolor=KINDS[kind][0],
                edgecolor=KINDS[kind][1],
                lw=1.0,
                zorder=0.5 - 0.1 * k,
            )
        )


def encoder_decoder() -> Canvas:
    cv = Canvas(8.0, 7.9)
    xe, xd = 1.85, 5.75
    cv.text(xe, 7.68, "Encoder: reads the source", size=11, weight="bold")
    cv.text(xd, 7.68, "Decoder: writes the target", size=11, weight="bold")
    cv.box(xe, 7.2, 2.7, 0.5, "source ids", kind="tensor", sub="x₁ … xₘ EOS")
    cv.box(xd, 7.2, 2.7, 0.5, "target in (shifted right)", kind="tensor", sub="BOS y₁ … yₙ")
    cv.arrow((xe, 6.95), (xe, 6.64), "(B, S)")
    cv.arrow((xd, 6.95), (xd, 6.64), "(B, T)")
    for x in (xe, xd):
        cv.box(
            x,
            6.36,
            2.9,
            0.56,
            "embedding · √d + sinusoidal",
            kind="linear",
            sub="one V × d matrix for both",
        )
    cv.arrow((xe, 6.08), (xe, 5.55), "(B, S, d)")
    cv.arrow((xd, 6.08), (xd, 5.72), "(B, T, d)", side="left")

    # Encoder: chapter 5's block, bidirectional, N times.
    _stack(cv, xe, 5.0, 2.9, 1.1)
    cv.box(
        xe,
        5.0,
        2.9,
        1.1,
        "N × encoder block",
        kind="attn",
        sub="self-attention, bidirectional\n(padding masked) → FFN\npre-norm, ⊕ residuals",
        size=10.5,
    )
    cv.arrow((xe, 4.45), (xe, 4.06), "(B, S, d)")
    cv.box(xe, 3.84, 2.0, 0.42, "LayerNorm  enc_ln", kind="norm", size=9.5)
    cv.arrow((xe, 3.63), (xe, 3.3))
    cv.box(xe, 3.05, 2.2, 0.5, "memory", kind="tensor", sub="(B, S, d), computed once")

    # Decoder: three sub-layers, each pre-norm with its own residual.
    top, bottom = 5.72, 2.62
    _stack(cv, xd, (top + bottom) / 2, 3.1, top - bottom)
    frame = _frame(cv, xd, top, bottom, 3.1, kind="attn")
    cv.inside.append((cv.text(xd, top - 0.2, "N × decoder block", size=10.5), frame))
    subs = [
        (5.12, "masked self-attention", "causal: token t sees tokens ≤ t", "attn"),
        (4.27, "cross-attention", "q from the decoder, k and v from memory", "attn"),
        (3.42, "FFN", "Linear d → 4d, GELU, Linear 4d → d", "ffn"),
    ]
    for k, (y, label, sub, kind) in enumerate(subs):
        cv.box(
            xd, y, 2.8, 0.56, label, kind=kind, sub=sub, fill="white" if kind == "attn" else None
        )
        if k:
            cv.arrow((xd, subs[k - 1][0] - 0.28), (xd, y + 0.28))
    cv.inside.append(
        (
            cv.text(
                xd, bottom + 0.2, "each: LayerNorm first, ⊕ residual after", size=8, color=MUTED
            ),
            frame,
        )
    )
    # memory → every decoder block's cross-attention
    xm = 3.55
    cv.line([xe + 1.1, xm], [3.05, 3.05], color=STREAM, lw=1.8)
    cv.line([xm, xm], [3.05, 4.27], color=STREAM, lw=1.8)
    cv.arrow((xm, 4.27), (xd - 1.4, 4.27), color=STREAM, lw=1.8)
    cv.text(xm - 0.08, 3.7, "k, v", size=8.5, color=STREAM, ha="right")

    cv.arrow((xd, bottom), (xd, 2.3), "(B, T, d)")
    cv.box(xd, 2.08, 2.0, 0.42, "LayerNorm  dec_ln", kind="norm", size=9.5)
    cv.arrow((xd, 1.87), (xd, 1.62))
    cv.box(
        xd,
        1.36,
        2.9,
        0.52,
        "head: Linear d → V",
        kind="linear",
        sub="weight = the embedding (tied)",
    )
    cv.arrow((xd, 1.1), (xd, 0.86), "(B, T, V)")
    cv.box(
        xd, 0.6, 2.9, 0.52, "label-smoothed cross-entropy", kind="loss", sub="targets y₁ … yₙ EOS"
    )
    cv.text(
        xe,
        1.55,
        "Translating: encode the source once,\nthen run the decoder once per new token\n"
        "(greedy or beam search), feeding\nits own output back as target in.",
        size=8.5,
        color=MUTED,
    )
    return cv


DIAGRAMS = {
    "attention_heads": attention_heads,
    "block": block,
    "gpt": gpt,
    "kv_cache": kv_cache,
    "bert_inputs": bert_inputs,
    "lora": lora,
    "llama_block": llama_block,
    "encoder_decoder": encoder_decoder,
}


def _why(path: Path) -> str:
    """What to do about a committed SVG that is not a fresh drawing."""
    if not path.exists():
        return "missing: run python scripts/draw_diagrams.py"
    drawn_with = re.search(rb"Matplotlib v([\w.+-]+),", path.read_bytes())
    if drawn_with and drawn_with.group(1).decode() != matplotlib.__version__:
        return (
            f"it was drawn with matplotlib {drawn_with.group(1).decode()}, this is "
            f"{matplotlib.__version__} (requirements.txt pins the version that draws them)"
        )
    return "run python scripts/draw_diagrams.py and commit the result"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed SVGs")
    parser.add_argument("--png", metavar="DIR", help="also save PNG twins into DIR")
    parser.add_argument("--out", default=str(OUT), help="folder of the SVGs")
    parser.add_argument("names", nargs="*", help="only these diagrams")
    args = parser.parse_args(argv)
    out = Path(args.out)
    names = args.names or list(DIAGRAMS)
    failed = False
    # Matplotlib's defaults, not a local matplotlibrc, then the diagrams' style.
    with plt.style.context("default"), plt.rc_context(STYLE):
        for name in names:
            cv = DIAGRAMS[name]()
            for problem in cv.problems():
                print(f"{name}: {problem}", file=sys.stderr)
                failed = True
            data = cv.svg()
            path = out / f"{name}.svg"
            if args.check:
                if not path.exists() or path.read_bytes() != data:
                    print(f"{path.name}: differs from a fresh drawing; {_why(path)}")
                    failed = True
            else:
                out.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                print(f"{path.name}: {len(data) / 1024:.0f} KB")
            if args.png:
                Path(args.png).mkdir(parents=True, exist_ok=True)
                cv.fig.savefig(Path(args.png) / f"{name}.png", dpi=110)
            plt.close(cv.fig)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
