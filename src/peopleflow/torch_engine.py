"""Run an ONNX graph with PyTorch: the detector's GPU path where onnxruntime has no CUDA.

onnxruntime's CUDA provider is a separate wheel built for one CUDA major version; a machine
with a CUDA build of PyTorch already has everything a GPU needs. ``TorchGraph`` executes the
graph's nodes in order with ``torch`` operators, so the same weights give the same boxes
(to float rounding) on the CPU, on CUDA, in float32 or in float16. It covers the operators a
YOLOv8 export uses; any other operator is refused when the graph is loaded, not mid-run.

The ops are looked up once at load time and the graph is a flat list, so the per-call cost is
one Python dispatch per node (about 230 for YOLOv8s): small beside a batch's convolutions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class UnsupportedGraph(ValueError):
    """The ONNX graph uses an operator or attribute ``TorchGraph`` does not implement."""


class TorchGraph:
    """An ONNX model as a callable on ``torch`` tensors: ``graph(x) -> list of outputs``."""

    def __init__(self, model: bytes, device: str = "cpu", half: bool = False) -> None:
        import onnx
        import torch
        from onnx import numpy_helper

        proto = onnx.load_from_string(model)
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.consts: dict[str, Any] = {}
        for init in proto.graph.initializer:
            a = numpy_helper.to_array(init)
            t = torch.from_numpy(np.array(a)).to(self.device)  # a copy: onnx arrays are read-only
            self.consts[init.name] = t.to(self.dtype) if t.is_floating_point() else t
        self.input = proto.graph.input[0].name
        self.outputs = [o.name for o in proto.graph.output]
        self.nodes: list[tuple[Callable[..., Any], list[str], list[str]]] = []
        for node in proto.graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                t = torch.from_numpy(np.array(numpy_helper.to_array(attrs["value"])))
                t = t.to(self.device)
                self.consts[node.output[0]] = t.to(self.dtype) if t.is_floating_point() else t
                continue
            make = _OPS.get(node.op_type)
            if make is None:
                raise UnsupportedGraph(f"ONNX operator {node.op_type} is not supported")
            self.nodes.append((make(attrs), list(node.input), list(node.output)))

    def __call__(self, x: Any) -> list[Any]:
        import torch

        values = dict(self.consts)
        values[self.input] = x.to(self.device, self.dtype)
        with torch.inference_mode():
            for op, inputs, outputs in self.nodes:
                result = op(*[values[n] if n else None for n in inputs])
                if isinstance(result, (tuple, list)):
                    values.update(zip(outputs, result, strict=True))
                else:
                    values[outputs[0]] = result
        return [values[n] for n in self.outputs]


def _conv(attrs: dict[str, Any]) -> Callable[..., Any]:
    import torch.nn.functional as F

    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise UnsupportedGraph(f"Conv with asymmetric pads {pads}")
    stride, dilation = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    groups = attrs.get("group", 1)

    def conv(x: Any, w: Any, b: Any = None) -> Any:
        return F.conv2d(x, w, b, stride, pads[:2], dilation, groups)

    return conv


def _maxpool(attrs: dict[str, Any]) -> Callable[..., Any]:
    import torch.nn.functional as F

    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise UnsupportedGraph(f"MaxPool with asymmetric pads {pads}")
    kernel, stride = attrs["kernel_shape"], attrs.get("strides", [1, 1])
    ceil = bool(attrs.get("ceil_mode", 0))
    return lambda x: F.max_pool2d(x, kernel, stride, pads[:2], ceil_mode=ceil)


def _resize(attrs: dict[str, Any]) -> Callable[..., Any]:
    import torch.nn.functional as F

    if attrs.get("mode", b"nearest") != b"nearest":
        raise UnsupportedGraph("Resize other than nearest")

    def resize(x: Any, roi: Any = None, scales: Any = None, sizes: Any = None) -> Any:
        if sizes is not None and sizes.numel():
            return F.interpolate(x, size=[int(s) for s in sizes.tolist()[2:]], mode="nearest")
        return F.interpolate(x, scale_factor=[float(s) for s in scales.tolist()[2:]])

    return resize


def _split(attrs: dict[str, Any]) -> Callable[..., Any]:
    import torch

    axis = attrs.get("axis", 0)

    def split(x: Any, sizes: Any = None) -> Any:
        parts = sizes.tolist() if sizes is not None else attrs["split"]
        return torch.split(x, parts, dim=axis)

    return split


def _reshape(_: dict[str, Any]) -> Callable[..., Any]:
    def reshape(x: Any, shape: Any) -> Any:
        target = shape.tolist()
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]  # 0: keep dim
        return x.reshape(target)

    return reshape


def _slice(_: dict[str, Any]) -> Callable[..., Any]:
    def slice_(x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Any:
        axes_ = axes.tolist() if axes is not None else list(range(len(starts)))
        steps_ = steps.tolist() if steps is not None else [1] * len(axes_)
        index = [slice(None)] * x.dim()
        for a, s, e, st in zip(axes_, starts.tolist(), ends.tolist(), steps_, strict=True):
            index[a] = slice(s, min(e, x.shape[a]), st)
        return x[tuple(index)]

    return slice_


def _concat(attrs: dict[str, Any]) -> Callable[..., Any]:
    import torch

    return lambda *xs: torch.cat(xs, dim=attrs["axis"])


def _simple(fn_name: str) -> Callable[[dict[str, Any]], Callable[..., Any]]:
    def make(_: dict[str, Any]) -> Callable[..., Any]:
        import torch

        fn: Callable[..., Any] = getattr(torch, fn_name)
        return fn

    return make


_OPS: dict[str, Callable[[dict[str, Any]], Callable[..., Any]]] = {
    "Conv": _conv,
    "MaxPool": _maxpool,
    "Resize": _resize,
    "Split": _split,
    "Reshape": _reshape,
    "Slice": _slice,
    "Concat": _concat,
    "Sigmoid": _simple("sigmoid"),
    "Mul": _simple("mul"),
    "Add": _simple("add"),
    "Sub": _simple("sub"),
    "Div": _simple("div"),
    "Transpose": lambda a: lambda x: x.permute(*a["perm"]),
    "Softmax": lambda a: lambda x: x.softmax(dim=a.get("axis", -1)),
}
