"""Predictions drawn over the frame they came from: face boxes, the 49 landmarks, the two
region centres of every AU (coloured by its probability) and the most likely AUs; and
an annotated sequence of a video's predictions (sampled frames above, each face's AU
probabilities over time below). Matplotlib's Agg backend, PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mgrr_pyg.facs import NUM_LANDMARKS, au_centres

from .figure import finish_figure

#: Colours of face indices 0, 1, 2, ... (cycled).
FACE_COLOURS = ("#00e5ff", "#ffea00", "#ff4081", "#76ff03", "#ff9100", "#d500f9")


def _face_rows(table, input_name=None, frame=None):
    rows = table
    if input_name is not None:
        rows = rows[rows["input"].astype(str) == str(input_name)]
    if frame is not None:
        rows = rows[rows["frame"] == int(frame)]
    return rows


def table_aus(table) -> tuple[int, ...]:
    """The AU numbers of a prediction table, from its ``AUxx_p`` columns."""
    return tuple(int(c[2:-2]) for c in table.columns if c.startswith("AU") and c.endswith("_p"))


def row_landmarks(row) -> np.ndarray:
    return np.stack([[row[f"x_{i}"], row[f"y_{i}"]] for i in range(NUM_LANDMARKS)]).astype(np.float64)


def draw_faces(ax, image: np.ndarray, rows, aus: Sequence[int], top: int = 3,
               landmarks: bool = True, centres: bool = True, boxes: bool = True,
               font_size: float = 8.0, frame_size: Optional[tuple[int, int]] = None,
               view: Optional[tuple[float, float, float, float]] = None) -> None:
    """Draw ``image`` and the faces of ``rows`` (prediction-table rows of this frame) on
    the matplotlib axes ``ax``. ``frame_size`` ``(width, height)``: the size of the frame
    the predictions were made on, when ``image`` is a smaller thumbnail of it; ``view``
    ``(x0, y0, x1, y1)``: the part of the frame shown (default: all of it)."""
    from matplotlib import colormaps, patches

    height, width = image.shape[:2]
    if frame_size is not None:
        width, height = frame_size
    x0, y0, x1, y1 = view if view is not None else (0.0, 0.0, float(width), float(height))
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    ax.set_xlim(x0 - 0.5, x1 - 0.5)
    ax.set_ylim(y1 - 0.5, y0 - 0.5)
    ax.set_axis_off()
    cmap = colormaps["plasma"]
    figure = ax.get_figure()
    points_per_pixel = ax.get_position().width * figure.get_figwidth() * 72 / (x1 - x0)
    for _, row in rows.iterrows():
        if int(row["success"]) != 1:
            ax.text(0.02 * width, 0.06 * height, "no face", color="white", fontsize=font_size,
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 2})
            continue
        colour = FACE_COLOURS[int(row["face"]) % len(FACE_COLOURS)]
        probs = np.array([row[f"AU{a:02d}_p"] for a in aus], dtype=np.float64)
        if boxes:
            ax.add_patch(patches.Rectangle((row["box_x"] - 0.5, row["box_y"] - 0.5), row["box_w"],
                                           row["box_h"], fill=False, edgecolor=colour, linewidth=1.5))
        points = row_landmarks(row)
        # Marker sizes follow the face as drawn (scatter sizes are in points^2, not pixels).
        face_points = row["box_w"] * points_per_pixel
        if landmarks:
            ax.scatter(points[:, 0], points[:, 1], s=(0.025 * face_points) ** 2, c=colour,
                       edgecolors="none", zorder=3)
        if centres:
            centre_points = au_centres(points, tuple(aus))  # [n, 2, 2]
            for k in range(len(aus)):
                ax.scatter(centre_points[k, :, 0], centre_points[k, :, 1],
                           s=(0.045 * face_points) ** 2,
                           c=[cmap(probs[k])] * 2, marker="s", edgecolors="black", linewidths=0.4,
                           zorder=4, alpha=0.85)
        order = np.argsort(-probs)[:top]
        label = f"face {int(row['face'])}  " + "  ".join(f"AU{aus[k]} {probs[k]:.2f}" for k in order)
        ax.text(row["box_x"], row["box_y"] - 4, label, color="black", fontsize=font_size,
                va="bottom", bbox={"facecolor": colour, "alpha": 0.8, "pad": 1.5, "linewidth": 0})


def plot_face_predictions(image: np.ndarray, table, input_name=None, frame: Optional[int] = None,
                          path: Optional[Union[str, Path]] = None, top: int = 3,
                          title: Optional[str] = None, zoom: bool = True):
    """One frame with its predicted faces: box, landmarks, the AU region centres (squares
    coloured by the AU's probability, plasma scale 0..1) and the ``top`` most likely AUs.

    Args:
        image: ``[H, W, 3]`` uint8 RGB, the frame the predictions were made on.
        table: The prediction table (``Detector.predict`` / ``mgrr-predict``'s CSV).
        input_name, frame (optional): Which rows belong to this frame.
        path (optional): Write a PNG there (atomically) and return the path; otherwise
            return the figure.
        zoom (bool): Show the part of the frame around the faces (their boxes grown by
            60 % on each side) rather than the whole frame.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rows = _face_rows(table, input_name, frame)
    if rows.empty:
        raise ValueError(f"table: no rows for input {input_name!r}, frame {frame!r}")
    aus = table_aus(table)
    height, width = image.shape[:2]
    view = (0.0, 0.0, float(width), float(height))
    found = rows[rows["success"] == 1]
    if zoom and len(found):
        x0 = (found["box_x"] - 0.6 * found["box_w"]).min()
        y0 = (found["box_y"] - 0.6 * found["box_h"]).min()
        x1 = (found["box_x"] + 1.6 * found["box_w"]).max()
        y1 = (found["box_y"] + 1.6 * found["box_h"]).max()
        view = (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
    aspect = (view[3] - view[1]) / (view[2] - view[0])
    fig = Figure(figsize=(7.0, 7.0 * aspect))
    ax = fig.add_axes((0.02, 0.02, 0.8, 0.9))
    draw_faces(ax, image, rows, aus, top=top, view=view)
    ax.set_title(title or f"{input_name if input_name is not None else ''} frame "
                 f"{int(rows['frame'].iloc[0])}", fontsize=9)
    fig.colorbar(ScalarMappable(Normalize(0, 1), "plasma"), ax=ax, shrink=0.6,
                 label="AU probability (region centres)")
    return finish_figure(fig, path, tight=True)


def plot_prediction_sequence(frames: Sequence[tuple[int, np.ndarray]], table,
                             input_name=None, path: Optional[Union[str, Path]] = None,
                             columns: int = 4, max_faces: int = 3,
                             frame_size: Optional[tuple[int, int]] = None):
    """A video's predictions: the given sampled frames annotated (above) and, for each
    tracked face (up to ``max_faces``), its AU probabilities over every predicted frame
    as a heat map (below; frames where the face was not found are blank).

    Args:
        frames: ``(frame index, [H, W, 3] uint8)`` pairs to show (a few, e.g. 8).
        table: The prediction table of the video.
        frame_size (optional): ``(width, height)`` of the video when ``frames`` are
            smaller thumbnails.
        input_name (optional): Rows of this input only.
        path (optional): Write a PNG there (atomically); otherwise return the figure.
    """
    from matplotlib.figure import Figure

    rows = _face_rows(table, input_name)
    if rows.empty:
        raise ValueError(f"table: no rows for input {input_name!r}")
    aus = table_aus(table)
    faces = sorted(int(f) for f in rows["face"].dropna().unique())[:max_faces]
    timeline = sorted(int(f) for f in rows["frame"].unique())
    count = len(frames)
    grid_rows = -(-count // columns) if count else 0
    if frame_size is not None:
        aspect = frame_size[1] / frame_size[0]
    else:
        aspect = frames[0][1].shape[0] / frames[0][1].shape[1] if frames else 0.75
    tile = 3.0 * aspect + 0.35  # a 3-inch-wide thumbnail and its title
    heat = 0.12 * len(aus) + 0.6
    heights = [tile] * grid_rows + [heat] * max(len(faces), 1)
    fig = Figure(figsize=(3.0 * columns, sum(heights) + 0.6))
    spec = fig.add_gridspec(len(heights), columns, height_ratios=heights, left=0.06, right=0.97,
                            top=1 - 0.45 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                            hspace=0.35, wspace=0.04)
    for k, (index, image) in enumerate(frames):
        ax = fig.add_subplot(spec[k // columns, k % columns])
        draw_faces(ax, image, rows[rows["frame"] == index], aus, top=1, font_size=5,
                   frame_size=frame_size)
        ax.set_title(f"frame {index}", fontsize=8)
    for j, face in enumerate(faces or [None]):
        ax = fig.add_subplot(spec[grid_rows + j, :])
        matrix = np.full((len(aus), len(timeline)), np.nan)
        if face is not None:
            mine = rows[rows["face"] == face]
            position = {f: i for i, f in enumerate(timeline)}
            for _, row in mine.iterrows():
                matrix[:, position[int(row["frame"])]] = [row[f"AU{a:02d}_p"] for a in aus]
        shown = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest",
                          extent=(timeline[0] - 0.5, timeline[-1] + 0.5, len(aus) - 0.5, -0.5))
        ax.set_yticks(range(len(aus)), [f"AU{a}" for a in aus], fontsize=6)
        ax.set_ylabel(f"face {face}" if face is not None else "no face", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        if j == max(len(faces), 1) - 1:
            ax.set_xlabel("frame")
        fig.colorbar(shown, ax=ax, pad=0.01, label="p")
    name = input_name if input_name is not None else str(rows["input"].iloc[0])
    fig.suptitle(f"{Path(name).name}: {len(timeline)} sampled frames, {len(faces)} tracked "
                 f"face{'s' if len(faces) != 1 else ''}", fontsize=9)
    return finish_figure(fig, path)


__all__ = ["FACE_COLOURS", "draw_faces", "plot_face_predictions", "plot_prediction_sequence",
           "row_landmarks", "table_aus"]
