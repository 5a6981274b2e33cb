"""History: what fit() returns, shaped like Keras's (`.history[key]` is one float per epoch), and its
plot: the loss and metric curves per epoch (matplotlib, the `plot` extra)."""
from __future__ import annotations

from .callbacks import Callback

PANEL_INCHES = (4.5, 3.5)  # width, height of one panel of History.plot
PLOT_DPI = 100  # so a saved plot of n panels is (450 * n) x 350 pixels


class History(Callback):
    """Records each epoch's logs. fit() appends one to its callbacks (last, so it records what the
    other callbacks added, such as "learning_rate"), sets it as model.history and returns it."""

    def __init__(self, params=None):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = dict(params or {})

    def on_epoch_end(self, epoch, logs=None):
        self.record(epoch, logs or {})

    def record(self, epoch, logs):
        """Append one epoch's logs ({"loss": ..., "val_loss": ...}) to the per-key lists."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path=None):
        """One panel per quantity (loss, then each metric, then learning_rate), each with its training
        curve and, when recorded, its "val_" curve, against the epoch (counted from 1). Saved as a PNG
        of (450 * panels) x 350 pixels when `path` is given (no window is opened then); without a path
        the figure is made through pyplot, so plt.show() or a notebook displays it. Returns the Figure."""
        names = _panels(self.history)
        if not names:
            raise ValueError("History.plot: nothing to plot; fit() has recorded no epochs")
        try:
            import matplotlib  # noqa: F401
        except ImportError as e:
            raise ImportError("History.plot needs matplotlib: pip install 'devtensor[plot]'") from e
        size = (PANEL_INCHES[0] * len(names), PANEL_INCHES[1])
        if path is None:
            from matplotlib import pyplot as plt

            fig = plt.figure(figsize=size, dpi=PLOT_DPI)
        else:  # a bare Figure: no pyplot state, no GUI backend
            from matplotlib.figure import Figure

            fig = Figure(figsize=size, dpi=PLOT_DPI)
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes, names):
            for key, label in ((name, "train"), ("val_" + name, "validation")):
                values = self.history.get(key)
                if values:
                    ax.plot(epochs[:len(values)], values, marker="o", markersize=3, label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            if name == "learning_rate" and all(v > 0 for v in self.history[name]):
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            if len(ax.lines) > 1:
                ax.legend()
            ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, format="png", dpi=PLOT_DPI)
        return fig

    def __repr__(self):
        keys = ", ".join(sorted(self.history))
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"


def _panels(history):
    """The quantities to draw, in Keras's order: loss, the metrics, then learning_rate; a "val_" key
    joins its training key's panel (or has its own when the training key is absent)."""
    names = []
    for key in history:
        name = key[4:] if key.startswith("val_") else key
        if name not in names:
            names.append(name)
    rank = {"loss": 0, "learning_rate": 2}
    return sorted(names, key=lambda n: rank.get(n, 1))
