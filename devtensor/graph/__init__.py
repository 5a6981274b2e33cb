"""Graphs captured at the op table (the static side): ir.py holds the data, capture.py records
it from eager execution. Export (ONNX), TensorBoard's graph view and compiled replay read it."""
from __future__ import annotations

from .capture import Capture, active, capture
from .ir import Graph, Node, Ref, Value

__all__ = ["Capture", "Graph", "Node", "Ref", "Value", "active", "capture"]
