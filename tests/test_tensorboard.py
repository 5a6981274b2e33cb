"""devtensor.utils.tensorboard.SummaryWriter: what it writes is read back with TensorBoard's own reader
(EventAccumulator) and TensorBoard's own hparams protos, not with the library that wrote it. Scalars
come back with their steps and float32 values bit for bit; histograms, images, text and hparams are
present with their contents; add_graph's GraphDef has the model's ops, scoped by module and wired
as captured; the main job's --logdir writes its scalars."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt

pytest.importorskip("tensorboardX", reason="tensorboardX is not installed (pip install -e '.[test]' installs it)")
pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[test]' installs it)")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from devtensor import nn  # noqa: E402
from devtensor.utils.tensorboard import SummaryWriter  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _read(path):
    ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0, "images": 0})
    ea.Reload()
    return ea


def _scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def test_scalars_read_back_with_exact_steps_and_float32_values(tmp_path, device):
    rng = np.random.default_rng(0)
    values = rng.normal(size=7).astype(np.float32) * np.float32(1e3)
    steps = [0, 1, 2, 10, 999, 123456, 2 ** 40]
    sources = [
        float(values[0]),                                               # a Python float
        values[1],                                                      # a numpy float32
        dt.tensor(values[2], device=device),                            # a 0-d float32 tensor
        dt.tensor([values[3]], device=device),                          # a one-element tensor
        dt.tensor(values[4], device=device, requires_grad=True) * 1,    # part of a graph
        dt.tensor(float(values[5]), dtype=dt.float64, device=device),   # float64 holding a float32 value
        dt.tensor([[values[6]]], device=device),                        # one element in 2-d
    ]
    with SummaryWriter(tmp_path) as w:
        for step, v in zip(steps, sources):
            w.add_scalar("loss/train", v, step)
        w.add_scalar("int", 3, dt.tensor(5))                            # an int value; a 0-d tensor step
    ea = _read(tmp_path)
    got = _scalars(ea, "loss/train")
    assert [s for s, _ in got] == steps
    assert [np.float32(v) for _, v in got] == list(values)            # bit for bit
    assert all(float(np.float32(v)) == v for _, v in got)
    assert _scalars(ea, "int") == [(5, 3.0)]


def test_new_style_scalars_and_double_precision(tmp_path):
    x = 0.1  # not a float32 value: double_precision keeps it exactly
    with SummaryWriter(tmp_path) as w:
        w.add_scalar("d", x, 3, new_style=True, double_precision=True)
        w.add_scalar("f", x, 4, new_style=True)
    ea = _read(tmp_path)
    (d,) = ea.Tensors("d")
    (f,) = ea.Tensors("f")
    assert d.step == 3 and d.tensor_proto.double_val == [x]
    assert f.step == 4 and np.float32(f.tensor_proto.float_val[0]) == np.float32(x)


def test_add_scalars_writes_one_run_per_tag_in_pytorchs_layout(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(3):
            w.add_scalars("run/loss", {"train": dt.tensor(1.5 * step), "val": 2.0 * step}, step)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run_loss_train", "run_loss_val"]
    assert _scalars(_read(tmp_path / "run_loss_train"), "run/loss") == [(0, 0.0), (1, 1.5), (2, 3.0)]
    assert _scalars(_read(tmp_path / "run_loss_val"), "run/loss") == [(0, 0.0), (1, 2.0), (2, 4.0)]


def test_histograms_are_present_with_their_statistics(tmp_path):
    values = dt.tensor(np.linspace(-2, 3, 101, dtype=np.float32))
    with SummaryWriter(tmp_path) as w:
        w.add_histogram("w", values, 0)
        w.add_histogram("w", values * 2, 1)
        w.add_histogram("half", values.to(dt.float16), 0)      # widened to float32 on the way
        w.add_histogram("auto", values.numpy(), 0, bins="auto")
    ea = _read(tmp_path)
    assert set(ea.Tags()["histograms"]) == {"w", "half", "auto"}
    h0, h1 = ea.Histograms("w")
    assert (h0.step, h1.step) == (0, 1)
    assert h0.histogram_value.num == 101
    assert (h0.histogram_value.min, h0.histogram_value.max) == (-2.0, 3.0)
    assert h1.histogram_value.max == 6.0
    assert sum(h0.histogram_value.bucket) == 101
    assert ea.Histograms("half")[0].histogram_value.num == 101


def test_images_are_present_and_decode_to_the_pixels_written(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    with SummaryWriter(tmp_path) as w:
        w.add_image("rgb", dt.tensor(rgb), 2)                       # CHW uint8
        w.add_image("gray", dt.rand(6, 4), 0, dataformats="HW")     # float in [0, 1]
        w.add_images("batch", dt.rand(4, 1, 8, 8), 0)               # NCHW, drawn as one grid
    ea = _read(tmp_path)
    assert set(ea.Tags()["images"]) == {"rgb", "gray", "batch"}
    (img,) = ea.Images("rgb")
    assert (img.step, img.width, img.height) == (2, 7, 5)
    decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)).convert("RGB"))
    np.testing.assert_array_equal(decoded, rgb.transpose(1, 2, 0))
    (gray,) = ea.Images("gray")
    assert (gray.width, gray.height) == (4, 6)


def test_text_and_hparams_are_present(tmp_path):
    with SummaryWriter(tmp_path) as w:
        w.add_text("notes", "lr **1e-3**, batch 64", 7)
        w.add_hparams({"lr": 1e-3, "batch": 64, "optim": "adam", "nesterov": False, "wd": dt.tensor(0.5)},
                      {"hparam/accuracy": dt.tensor(0.875), "hparam/loss": 0.25},
                      hparam_domain_discrete={"optim": ["adam", "sgd"]}, run_name="trial1")
    (text,) = _read(tmp_path).Tensors("notes/text_summary")
    assert text.step == 7 and text.tensor_proto.string_val == [b"lr **1e-3**, batch 64"]

    ea = _read(tmp_path / "trial1")
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["lr"].number_value == 1e-3 and hp["batch"].number_value == 64
    assert hp["optim"].string_value == "adam" and hp["nesterov"].bool_value is False
    assert hp["wd"].number_value == 0.5
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    infos = {i.name: i for i in exp.hparam_infos}
    assert [v.string_value for v in infos["optim"].domain_discrete.values] == ["adam", "sgd"]
    assert {m.name.tag for m in exp.metric_infos} == {"hparam/accuracy", "hparam/loss"}
    assert "_hparams_/session_end_info" in content
    assert _scalars(ea, "hparam/accuracy") == [(0, 0.875)]


def test_hparams_reject_values_tensorboard_cannot_show(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="hyper-parameter 'layers' is a list"):
            w.add_hparams({"layers": [1, 2]}, {"m": 1.0})
        with pytest.raises(TypeError, match="same type"):
            w.add_hparams({"lr": 0.1}, {"m": 1.0}, hparam_domain_discrete={"lr": ["a"]})


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, 3)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x, scale):
        return nn.functional.log_softmax(self.norm(self.head(self.body(x))), dim=1) * scale, x.sum()


def test_add_graph_draws_the_captured_forward_scoped_by_module(tmp_path):
    net = TinyNet()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    with SummaryWriter(tmp_path) as w:
        w.add_graph(net, (dt.randn(2, 4), dt.tensor(2.0)))
    graph = _read(tmp_path).Graph()  # TensorBoard's reader parses the GraphDef
    nodes = {n.name: n for n in graph.node}
    assert nodes["input/input.0"].op == "IO Node" and nodes["input/input.1"].op == "IO Node"
    assert nodes["TinyNet/Sequential[body]/Linear[0]/weight"].op == "Parameter"
    assert nodes["TinyNet/BatchNorm1d[norm]/running_mean"].op == "Buffer"
    (lin,) = [n for name, n in nodes.items() if name.startswith("TinyNet/Sequential[body]/Linear[0]/linear_")]
    assert list(lin.input) == ["input/input.0", "TinyNet/Sequential[body]/Linear[0]/weight",
                               "TinyNet/Sequential[body]/Linear[0]/bias"]
    assert [d.size for d in lin.attr["_output_shapes"].list.shape[0].dim] == [2, 8]
    (relu,) = [n for n in graph.node if n.op == "relu"]
    assert relu.name.startswith("TinyNet/Sequential[body]/ReLU[1]/") and list(relu.input) == [lin.name]
    (softmax,) = [n for n in graph.node if n.op == "log_softmax"]
    assert softmax.attr["attr"].s == b"dim=1"
    assert [n.name for n in graph.node if n.op == "IO Node" and n.name.startswith("output/")] == \
        ["output/output.0", "output/output.1"]
    # traced as PyTorch traces it: in eval mode (no dropout, running statistics read, not updated)
    assert not any(n.op in ("dropout", "bernoulli", "rand") for n in graph.node)
    assert net.training and net.body[2].training  # the modes are restored
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_add_graph_needs_an_example_input(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(TypeError, match="example input"):
            w.add_graph(nn.Linear(2, 1))


def test_default_log_dir_flush_close_and_reopen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = SummaryWriter(comment="_exp", flush_secs=120)
    assert w.log_dir.startswith("runs" + os.sep) and w.log_dir.endswith("_exp") and w.get_logdir() == w.log_dir
    w.add_scalar("a", 1.0, 0)
    w.flush()  # visible before close, although flush_secs has not passed
    assert _scalars(_read(w.log_dir), "a") == [(0, 1.0)]
    w.close()
    w.close()  # a second close does nothing
    w.add_scalar("a", 2.0, 1)  # after close a new event file is opened, as in PyTorch
    w.close()
    assert _scalars(_read(w.log_dir), "a") == [(0, 1.0), (1, 2.0)]


def test_bad_arguments_say_what_is_wrong(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="single number"):
            w.add_scalar("a", dt.zeros(3), 0)
        with pytest.raises(TypeError, match="global_step must be an int"):
            w.add_scalar("a", 1.0, 1.5)


@pytest.mark.cuda
def test_cuda_tensors_are_moved_to_the_host(tmp_path):
    x = dt.arange(10, dtype=dt.float32, device="cuda")
    with SummaryWriter(tmp_path) as w:
        w.add_scalar("s", x.sum(), 1)
        w.add_histogram("h", x, 1)
        w.add_image("i", (x / 10).reshape(1, 2, 5), 1)
    ea = _read(tmp_path)
    assert _scalars(ea, "s") == [(1, 45.0)] and ea.Histograms("h")[0].histogram_value.num == 10
    assert ea.Images("i")[0].width == 5


def test_cnn_mnist_logdir_writes_loss_and_accuracy(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import cnn_mnist
    finally:
        sys.path.remove(str(EXAMPLES))
    accuracy = cnn_mnist.main(["--device", "cpu", "--epochs", "1", "--limit", "128", "--logdir", str(tmp_path),
                               "--log-interval", "1"])
    ea = _read(tmp_path)
    assert [s for s, _ in _scalars(ea, "step/train_loss")] == [1, 2]  # 128 digits, batch 64
    assert _scalars(ea, "epoch/test_accuracy") == [(1, float(np.float32(accuracy)))]
    (train_loss,) = _scalars(ea, "epoch/train_loss")
    (train_acc,) = _scalars(ea, "epoch/train_accuracy")
    assert train_loss[0] == 1 and 0 < train_loss[1] < 5 and 0 <= train_acc[1] <= 1


def test_purge_step_hides_the_steps_of_a_crashed_run(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(5):
            w.add_scalar("a", float(step), step)
    with SummaryWriter(tmp_path, purge_step=2) as w:  # resumed from a checkpoint taken at step 2
        for step in (2, 3):
            w.add_scalar("a", 10.0 + step, step)
    assert _scalars(_read(tmp_path), "a") == [(0, 0.0), (1, 1.0), (2, 12.0), (3, 13.0)]
