"""The per-epoch progress bar (tqdm), and why it reads values only now and then.

Showing the running loss means reading it back from the device, which is a host sync; the bar only
redraws every `interval` seconds anyway, so values are read only when a redraw is due (and once
at the end of the epoch). On a stream that is not a terminal (a CI log, a file) tqdm's carriage
returns would pile up, so the bar redraws rarely there; a missing stream (sys.stderr is None under
pythonw) disables it. verbose=0 prints nothing; verbose=2 prints one line per epoch, as in Keras."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

TTY_INTERVAL = 0.1  # seconds between redraws on a terminal (tqdm's default)
LOG_INTERVAL = 30.0  # ... and in a log file, where every redraw is kept


def format_logs(logs):
    return ", ".join(f"{k}={v:.4f}" for k, v in logs.items())


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty(), or a closed stream
        return False


class Progress:
    def __init__(self, desc, total, verbose, stream=None):
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), got {verbose!r}")
        self.stream = sys.stderr if stream is None else stream
        self.desc = desc
        self.verbose = verbose if self.stream is not None else 0
        self.interval = TTY_INTERVAL if _isatty(self.stream) else LOG_INTERVAL
        self._last = float("-inf")
        self._bar = None
        if self.verbose == 1:
            self._bar = tqdm(total=total, desc=desc, file=self.stream, unit="batch", leave=True,
                             mininterval=self.interval, dynamic_ncols=_isatty(self.stream))

    def step(self, read_logs):
        """One batch done; `read_logs` (a host sync) is called only when the bar will redraw."""
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._bar.set_postfix_str(format_logs(read_logs()), refresh=False)
        self._bar.update(1)

    def close(self, logs):
        """End of the epoch: show the final logs (validation included) and finish the line."""
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            self._bar.close()
        elif self.verbose == 2:
            print(f"{self.desc}: {format_logs(logs)}", file=self.stream, flush=True)
