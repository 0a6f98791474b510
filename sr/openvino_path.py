"""The OpenVINO form of the fast path (``SR_BACKEND=openvino``, the default when installed).

:func:`openvino_generator` turns a zoo generator into a :class:`sr.runtime.FastGenerator` whose
core is a compiled OpenVINO model: the rewritten core (:func:`openvino_core`: the torch fast
path's rewrites plus :class:`TapSplitTail`) converted once in fp32 and cached on disk
(:mod:`sr.ovcache`), compiled in bf16 (or fp32), or the model's pinned int8 form
(:mod:`sr.int8`) when it matches these exact weights.
"""
from __future__ import annotations

import copy
import logging
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import FastGenerator, _int8_fallback

log = logging.getLogger(__name__)


class TapSplitTail(nn.Module):
    """The phase-space output convolution (``c_out`` = 4 phases x channels, ``k x k``) as a 1x1
    convolution to one channel per (output, tap), a depthwise ``k x k`` convolution with one-hot
    kernels that moves each tap's product into place, and a 1x1 sum per output, then the pixel
    shuffle. The same function (exact in real arithmetic; tests check it), but shaped for
    OpenVINO's kernels, which vectorise over output channels: 4 of them left most of each vector
    empty (31 ms of the improved SRGAN's 186 ms in bf16; 20 ms in this form)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        co, ci, k, _ = conv.weight.shape
        t = k * k
        self.taps = nn.Conv2d(ci, co * t, 1, bias=False)
        self.shift = nn.Conv2d(co * t, co * t, k, padding=k // 2, groups=co * t, bias=False)
        self.gather = nn.Conv2d(co * t, co, 1, bias=True)
        with torch.no_grad():
            self.taps.weight.copy_(conv.weight.permute(0, 2, 3, 1).reshape(co * t, ci, 1, 1))
            one_hot = torch.zeros(co * t, 1, k, k)
            one_hot.view(co, t, k * k)[:, torch.arange(t), torch.arange(t)] = 1
            self.shift.weight.copy_(one_hot)
            self.gather.weight.copy_(torch.kron(torch.eye(co), torch.ones(1, t))[:, :, None, None])
            self.gather.bias.copy_(conv.bias if conv.bias is not None else torch.zeros(co))

    def forward(self, z):
        return F.pixel_shuffle(self.gather(self.shift(self.taps(z))), 2)


def openvino_core(fast: FastGenerator) -> nn.Module:
    """The fp32 torch module that is converted: the fast path's rewritten core, with the
    output convolution split by :class:`TapSplitTail` when it has few output channels."""
    core = copy.deepcopy(fast.core).float()
    conv = core.tail.conv
    if conv.out_channels <= 16 and conv.kernel_size[0] > 1:
        core.tail = TapSplitTail(conv)
    return core.eval().requires_grad_(False)


def split_at_upsampling(model):
    """``(trunk, upsampler)``: the converted (or quantised) generator ``model`` cut at the input
    of its first upsampling convolution (the global skip sum; in an int8 model, before that
    input's quantiser, so both halves quantise as the whole does). For :mod:`sr.staged`."""
    import openvino as ov
    from openvino import opset13 as ops

    def cut(m):
        for op in m.get_ordered_ops():
            if op.get_type_name() == "Convolution" and op.get_friendly_name().startswith("__module.upsample.0."):
                src = op.input_value(0)
                while src.get_node().get_type_name() in ("FakeQuantize", "Convert"):
                    src = src.get_node().input_value(0)
                return src
        raise ValueError("no upsampling convolution in the model")

    m1 = model.clone()
    trunk = ov.Model([cut(m1)], m1.get_parameters(), "trunk")
    m2 = model.clone()
    out = cut(m2)
    feats = ops.parameter(out.get_partial_shape(), out.get_element_type(), name="features")
    for target in list(out.get_target_inputs()):
        target.replace_source_output(feats.output(0))
    return trunk, ov.Model(m2.get_results(), [feats], "upsampler")


class OpenVINOCore(nn.Module):
    """Runs a compiled OpenVINO model of the rewritten generator (dynamic input shapes).
    ``source`` (the model file it was compiled from) lets :meth:`stages` compile its two halves
    when a large image is tiled in two stages, and :meth:`streams` a throughput form for
    batches (each once, on first need)."""

    # A batch of planes (sr.video's frames, a multi-channel image) whose size the thread count
    # divides runs one plane per request on parallel streams, one thread each: on the 2-core EPYC
    # 8 frames of 128x128 through the lite model ran 1.10x as fast (74.9 vs 66.2 planes/s), 4 through
    # the improved SRGAN 1.05x, than one request on both threads (`python scripts/stream_probe.py
    # [--model srgan-improved --frames 4]`); 3 planes on 2 streams were 0.86x (one stream idles).

    def __init__(self, compiled, source=None, precision: str = "bf16", threads: int = 1):
        super().__init__()
        self._compiled = compiled
        self._source, self._precision, self._threads = source, precision, threads
        self._stages = None
        self._streams = None
        self._lock = threading.Lock()

    @staticmethod
    def _call(compiled, x: torch.Tensor) -> torch.Tensor:
        request = compiled.create_infer_request()  # one per call: thread-safe
        y = request.infer({0: x.float().contiguous().numpy()}, share_inputs=True)  # outputs: copies
        return torch.from_numpy(next(iter(y.values())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._threads > 1 and x.shape[0] % self._threads == 0:
            compiled = self.streams()
            if compiled is not None:
                return self._call_streams(compiled, x)
        return self._call(self._compiled, x)

    def streams(self):
        """The model compiled with one stream per thread (``None`` without a source or thread)."""
        if self._source is None or self._threads < 2:
            return None
        with self._lock:
            if self._streams is None:
                from . import ovcache

                self._streams = ovcache.compile_model(self._source, self._precision, self._threads,
                                                      streams=self._threads)
        return self._streams

    @staticmethod
    def _call_streams(compiled, x: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import openvino as ov

        xs = x.float().contiguous().numpy()
        out = []  # filled by the first plane's callback: (N, C', H', W') float32

        def done(request, i):
            y = request.get_output_tensor(0).data
            with lock:
                if not out:
                    out.append(np.empty((xs.shape[0],) + y.shape[1:], np.float32))
            out[0][i] = y[0]

        lock = threading.Lock()
        queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        queue.set_callback(done)  # one queue per call: thread-safe
        for i in range(xs.shape[0]):
            queue.start_async({0: xs[i:i + 1]}, userdata=i, share_inputs=True)
        queue.wait_all()
        return torch.from_numpy(out[0])

    def stages(self):
        """``(trunk, up)`` callables of the two compiled halves, or ``None`` without a source."""
        if self._source is None:
            return None
        with self._lock:
            if self._stages is None:
                import openvino as ov

                from . import ovcache

                try:
                    halves = split_at_upsampling(ov.Core().read_model(str(self._source)))
                except (ValueError, RuntimeError, OSError) as exc:
                    log.warning("no two-stage tiling for %s (%s)", self._source, exc)
                    self._source = None
                    return None
                self._stages = [ovcache.compile_model(m, self._precision, self._threads) for m in halves]
        trunk, up = self._stages
        return (lambda x: self._call(trunk, x)), (lambda h: self._call(up, h))


def openvino_generator(model: nn.Module, requested: str, precision: str) -> FastGenerator:
    """The rewritten generator converted (fp32 graph), then compiled in ``precision``: its int8
    model (:mod:`sr.int8`) when asked for or (``auto``) when the CPU has int8 instructions, a
    quantised model pinned for exactly these weights exists and its validation drift passes
    :func:`sr.int8.auto_ok`; else bf16/fp32."""
    from . import ovcache

    t0 = time.perf_counter()
    fast = FastGenerator(model, "fp32", "cpu")
    core = openvino_core(fast)
    fingerprint = ovcache.fingerprint(core)
    int8_xml = None
    entry = getattr(model, "zoo_entry", None)
    if precision == "int8" or (requested == "auto" and entry is not None):
        from . import int8

        if precision == "int8" or int8.cpu_has_int8():
            int8_xml = int8.find(entry.id, fingerprint) if entry is not None else None
        if int8_xml is not None and precision != "int8":
            ok, why = int8.auto_ok(int8_xml)
            if not ok:
                log.info("auto precision: %s runs bf16/fp32, not int8 (%s)", entry.id, why)
                int8_xml = None
        if int8_xml is None and precision == "int8":
            precision = _int8_fallback(model, "no quantised model matches these weights "
                                              "(`python -m sr quantize MODEL` makes one)")
    threads = torch.get_num_threads()
    if int8_xml is not None:
        compiled, hit, precision, source = ovcache.compile_model(int8_xml, "int8", threads), None, "int8", int8_xml
    else:
        in_c = fast.config.get("in_channels", 1)
        compiled, hit = ovcache.compiled(core, in_c, precision, threads, fingerprint)
        source = ovcache.ir_file(fingerprint, in_c)
    fast.core = OpenVINOCore(compiled, source, precision, threads)
    fast.fast_precision = precision
    fast.backend = "openvino"
    fast.memory_format = torch.contiguous_format
    fast.first_use = {"seconds": round(time.perf_counter() - t0, 3), "cache_hit": hit}
    return fast
