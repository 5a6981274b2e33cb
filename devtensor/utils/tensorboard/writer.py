"""SummaryWriter with torch.utils.tensorboard's names, arguments, defaults and directory layout.

The summaries (protocol buffers, histogram buckets, PNG encoding) come from tensorboardX (pure
Python: numpy + protobuf), imported when the first writer is made, so importing devtensor never
needs it; add_graph draws the forward that devtensor.graph captures (graph.py). The event file
itself is written here, synchronously: tensorboardX's writer hands events to a background thread
through a queue that its flush() does not drain, so an event added before flush() could still be
missing from disk after it. Here add_* writes the record at once (buffered by the file), every
`max_queue` events or `flush_secs` seconds the buffer goes to the OS, and flush() / close() also
fsync. File names carry the host, pid and a counter, as TensorBoard's own writer names them, so a
writer reopened within the same second never overwrites a file.

Every value may be a devtensor Tensor on any device: it is detached and copied to the host here
(one transfer per call), and float16/bfloat16/bool data is widened to float32, which the summary
code and TensorBoard read. Scalars are stored as float32 (`simple_value`), as PyTorch stores them, so a
float32 value reads back bit for bit; `double_precision=True` (with `new_style=True`) keeps float64.
"""
from __future__ import annotations

import itertools
import numbers
import os
import socket
import struct
import time
import weakref
from datetime import datetime

import numpy as np

from ...tensor import Tensor

_INSTALL_HINT = "pip install 'devtensor[tensorboard]'  (or: pip install tensorboardX)"

def _tensorboardx():
    try:
        import tensorboardX
    except ImportError as e:
        raise ImportError(f"devtensor.utils.tensorboard writes event files with tensorboardX, which is not "
                          f"installed: {_INSTALL_HINT}") from e
    return tensorboardX


def _host(value):
    """A devtensor Tensor (any device) as a numpy array; numpy arrays of dtypes the summary code does not
    handle (float16, bfloat16, bool) as float32; anything else unchanged."""
    if isinstance(value, Tensor):
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        value = np.asarray(value.numpy())
    if isinstance(value, np.ndarray) and (value.dtype.kind not in "iuf" or value.dtype == np.float16):
        value = value.astype(np.float32)
    return value


def _number(value, what):
    """A Python float from a number, a one-element Tensor or array (the scalar APIs)."""
    value = _host(value)
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{what}: expected a single number, got an array of shape {list(value.shape)}")
        return float(value.reshape(()))
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item"):  # a torch tensor or a numpy scalar
        return float(value.item())
    raise TypeError(f"{what}: expected a number or a one-element Tensor, got {type(value).__name__}")


_file_ids = itertools.count()


class _EventFile:
    """One event file: TFRecord-framed Event protos (length, masked CRC32C, data, masked CRC32C), the
    format TensorBoard reads, starting with the file-version event."""

    def __init__(self, logdir, max_queue, flush_secs, filename_suffix):
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.record_writer import masked_crc32c

        self._Event, self._crc = Event, masked_crc32c
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_file_ids)}{filename_suffix}")
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "wb")
        self._closer = weakref.finalize(self, self._file.close)  # written out at exit even if never closed
        self._max_queue, self._flush_secs = max(int(max_queue), 1), flush_secs
        self._pending, self._last_flush = 0, time.monotonic()
        self.add_event(Event(file_version="brain.Event:2"))

    def get_logdir(self):
        return self.logdir

    def add_event(self, event, step=None, walltime=None):
        event.wall_time = time.time() if walltime is None else walltime
        if step is not None:
            event.step = int(step)
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", self._crc(header)) + data + struct.pack("<I", self._crc(data)))
        self._pending += 1
        if self._pending >= self._max_queue or time.monotonic() - self._last_flush >= self._flush_secs:
            self._file.flush()
            self._pending, self._last_flush = 0, time.monotonic()

    def add_summary(self, summary, global_step=None, walltime=None):
        self.add_event(self._Event(summary=summary), global_step, walltime)

    def flush(self):
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._pending, self._last_flush = 0, time.monotonic()

    def close(self):
        if not self._file.closed:
            self.flush()
            self._closer()


def _default_bins():
    """TensorBoard's default histogram bucket limits (as torch.utils.tensorboard builds them)."""
    v, buckets = 1e-12, []
    while v < 1e20:
        buckets.append(v)
        v *= 1.1
    return [-b for b in reversed(buckets)] + [0] + buckets


class SummaryWriter:
    """Writes TensorBoard event files under `log_dir` (default `runs/<Mon DD_HH-MM-SS>_<host><comment>`).

    Methods as in PyTorch: add_scalar, add_scalars, add_histogram, add_image, add_images, add_figure,
    add_text, add_hparams, add_graph, flush, close, get_logdir; use it as a context manager to close it."""

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120, filename_suffix=""):
        self._tbx = _tensorboardx()
        if not log_dir:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", stamp + "_" + socket.gethostname() + comment)
        self.log_dir = os.fspath(log_dir)
        self.purge_step = purge_step
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self.filename_suffix = filename_suffix
        self.default_bins = _default_bins()
        self.file_writer = self.all_writers = None
        self._get_file_writer()

    # -- writers -------------------------------------------------------------------------------

    def _new_file_writer(self, logdir):
        return _EventFile(logdir, self.max_queue, self.flush_secs, self.filename_suffix)

    def _get_file_writer(self):
        """The writer of log_dir itself, (re)opened on first use after close(), as in PyTorch."""
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = self._new_file_writer(self.log_dir)
            if self.purge_step is not None:  # hide the events of a crashed run from purge_step on
                from tensorboardX.proto.event_pb2 import Event, SessionLog

                self.file_writer.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
                self.file_writer.add_event(Event(step=self.purge_step, session_log=SessionLog(status=SessionLog.START)))
                self.purge_step = None
            self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
        return self.file_writer

    def get_logdir(self):
        return self.log_dir

    def _add(self, summary, global_step, walltime):
        self._get_file_writer().add_summary(summary, _step(global_step), walltime)

    # -- scalars -------------------------------------------------------------------------------

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False, double_precision=False):
        """One point of the curve `tag`: a number or a one-element Tensor (any device) at `global_step`."""
        value = _number(scalar_value, "add_scalar")
        if new_style:
            summary = _tensor_scalar(tag, value, double_precision)
        else:
            summary = self._tbx.summary.scalar(tag, value)
        self._add(summary, global_step, walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Several curves in one chart: each tag is written as `main_tag` to its own run directory
        `<log_dir>/<main_tag>_<tag>` (PyTorch's layout; TensorBoard shows them as runs)."""
        walltime = time.time() if walltime is None else walltime
        root = self._get_file_writer().get_logdir()
        for tag, value in tag_scalar_dict.items():
            logdir = root + "/" + main_tag.replace("/", "_") + "_" + tag
            writer = self.all_writers.get(logdir)
            if writer is None:
                writer = self.all_writers[logdir] = self._new_file_writer(logdir)
            writer.add_summary(self._tbx.summary.scalar(main_tag, _number(value, "add_scalars")),
                               _step(global_step), walltime)

    # -- tensors as pictures -------------------------------------------------------------------

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        """The distribution of `values` (any shape); bins as numpy.histogram's, or "tensorflow"."""
        if isinstance(bins, str) and bins == "tensorflow":
            bins = self.default_bins
        values = _host(values)
        self._add(self._tbx.summary.histogram(tag, values, bins, max_bins=max_bins), global_step, walltime)

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        """An image: float values in [0, 1] or uint8 in [0, 255]; shape per `dataformats` (CHW, HWC, HW).
        Encoding the PNG needs pillow."""
        self._add(_image(self._tbx, tag, _host(img_tensor), dataformats), global_step, walltime)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        """A batch of images shown as one grid (NCHW or NHWC)."""
        self._add(_image(self._tbx, tag, _host(img_tensor), dataformats), global_step, walltime)

    def add_figure(self, tag, figure, global_step=None, close=True, walltime=None):
        """A matplotlib figure (or a list of them), rendered to an image."""
        from tensorboardX.utils import figure_to_image

        image = figure_to_image(figure, close)
        self.add_image(tag, image, global_step, walltime, dataformats="NCHW" if isinstance(figure, list) else "CHW")

    # -- text, hyper-parameters, graph ---------------------------------------------------------

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        """Text (markdown) shown in TensorBoard's Text tab."""
        self._add(self._tbx.summary.text(tag, text_string), global_step, walltime)

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None, global_step=None):
        """One session for TensorBoard's HParams tab, written to `<log_dir>/<run_name>` (default: the
        time), as PyTorch does: the hyper-parameters (bool, int, float, str, None or a one-element
        Tensor) and each metric as a scalar."""
        if type(hparam_dict) is not dict or type(metric_dict) is not dict:
            raise TypeError("hparam_dict and metric_dict should be dictionary.")
        hparam_dict = {k: _hparam_value(k, v) for k, v in hparam_dict.items()}
        metric_dict = {k: _number(v, f"add_hparams: metric {k!r}") for k, v in metric_dict.items()}
        exp, ssi, sei = self._tbx.summary.hparams(hparam_dict, metric_dict)
        if hparam_domain_discrete:
            exp = _with_domains(exp, hparam_dict, hparam_domain_discrete)
        if not run_name:
            run_name = str(time.time())
        with SummaryWriter(os.path.join(self._get_file_writer().get_logdir(), run_name),
                           max_queue=self.max_queue, flush_secs=self.flush_secs) as w:
            for summary in (exp, ssi, sei):
                w._add(summary, global_step, None)
            for k, v in metric_dict.items():
                w.add_scalar(k, v, global_step)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """The model's forward on `input_to_model` (a Tensor or a tuple of them), for TensorBoard's
        Graphs tab: captured by devtensor.graph, dt.compile's tracer, in eval mode under no_grad (see
        graph.py for the node names). verbose=True prints the captured graph; use_strict_trace is
        accepted for PyTorch's signature (the capture has no non-strict mode)."""
        from tensorboardX.proto.event_pb2 import Event

        from . import graph as _graph

        captured, types = _graph.trace(model, input_to_model)
        if verbose:
            print(captured)
        event = Event(graph_def=_graph.graph_def(captured, types).SerializeToString())
        self._get_file_writer().add_event(event)

    # -- lifetime ------------------------------------------------------------------------------

    def flush(self):
        """Write everything pending to disk."""
        if self.all_writers is None:
            return
        for writer in self.all_writers.values():
            writer.flush()

    def close(self):
        """Flush and close the event files; a later add_* call opens a new one."""
        if self.all_writers is None:
            return
        for writer in self.all_writers.values():
            writer.close()
        self.file_writer = self.all_writers = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"SummaryWriter(log_dir={self.log_dir!r})"


def _step(global_step):
    """The step as an int (a 0-d Tensor or numpy integer is accepted); None stays None (step 0)."""
    if global_step is None:
        return None
    value = _host(global_step)
    if isinstance(value, np.ndarray):
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"global_step must be an int, got {type(global_step).__name__} {global_step!r}")
    return int(value)


def _tensor_scalar(tag, value, double_precision):
    """PyTorch's new_style scalar: a 0-d tensor proto under the scalars plugin (float32, or float64)."""
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto

    if double_precision:
        tensor = TensorProto(dtype="DT_DOUBLE", double_val=[value], tensor_shape=TensorShapeProto())
    else:
        tensor = TensorProto(dtype="DT_FLOAT", float_val=[value], tensor_shape=TensorShapeProto())
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    return Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=metadata)])


def _image(tbx, tag, img, dataformats):
    try:
        return tbx.summary.image(tag, img, dataformats=dataformats)
    except ImportError as e:  # tensorboardX encodes the PNG with pillow
        raise ImportError(f"add_image needs pillow to encode the PNG: pip install pillow ({e})") from e


def _hparam_value(name, value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Real):
        return value
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        return _number(value, f"add_hparams: hyper-parameter {name!r}")
    raise ValueError(f"add_hparams: hyper-parameter {name!r} is a {type(value).__name__}; values must be "
                     f"bool, int, float, str, None or a one-element Tensor")


def _with_domains(exp, hparam_dict, domains):
    """Add PyTorch's hparam_domain_discrete (the values each hyper-parameter can take) to the
    experiment summary that tensorboardX built."""
    from google.protobuf import struct_pb2
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    if not isinstance(domains, dict):
        raise TypeError("parameter: hparam_domain_discrete should be a dictionary, nothing logged.")
    for k, v in domains.items():
        if k not in hparam_dict or not isinstance(v, list) or not all(isinstance(d, type(hparam_dict[k])) for d in v):
            raise TypeError(f"parameter: hparam_domain_discrete[{k}] should be a list of same type as hparam_dict[{k}].")
    metadata = exp.value[0].metadata
    data = HParamsPluginData.FromString(metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        for d in domains.get(info.name, ()):
            if isinstance(d, bool):
                info.domain_discrete.values.append(struct_pb2.Value(bool_value=d))
            elif isinstance(d, str):
                info.domain_discrete.values.append(struct_pb2.Value(string_value=d))
            else:
                info.domain_discrete.values.append(struct_pb2.Value(number_value=float(d)))
    metadata.plugin_data.content = data.SerializeToString()
    return exp
