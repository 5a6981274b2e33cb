"""History: what fit() returns, shaped like Keras's (`.history[key]` is one float per epoch)."""
from __future__ import annotations


class History:
    def __init__(self, params=None):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = dict(params or {})

    def record(self, epoch, logs):
        """Append one epoch's logs ({"loss": ..., "val_loss": ...}) to the per-key lists."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        keys = ", ".join(sorted(self.history))
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"
