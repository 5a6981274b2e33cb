"""Export to ONNX: `devtensor.onnx.export(model, args, f, ...)`, PyTorch's `torch.onnx.export`.

    import devtensor.onnx
    devtensor.onnx.export(model, (x,), "model.onnx", input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17)

The model's forward is captured at the op table (devtensor.graph.capture) in eval mode under
no_grad; each captured op maps to ONNX nodes built with the `onnx` package's helpers
(devtensor/onnx/ops.py), and layers ONNX has one op for (BatchNorm, LayerNorm from opset 17, GELU
from opset 20, LeakyReLU) map whole (devtensor/onnx/layers.py). The `onnx` package is imported
only when export runs: `pip install "devtensor[onnx]"`.
"""
from __future__ import annotations

from .common import MIN_OPSET, ExportError, UnsupportedOperatorError
from .exporter import export
from .ops import CONVERTERS, UNSUPPORTED

__all__ = ["export", "ExportError", "UnsupportedOperatorError", "CONVERTERS", "UNSUPPORTED", "MIN_OPSET"]
