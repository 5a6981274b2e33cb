"""Peak throughputs of known GPUs (datasheet figures) and a copy bandwidth measured at run time.

Datasheet peaks are ceilings a kernel never quite reaches; `devtensor bench` reports "% of peak"
against them so a number can be judged without knowing the card. The measured copy bandwidth
(read + write of a large buffer, STREAM-copy style) is the realistic ceiling for memory-bound ops
and is the only ceiling we have for the cpu, whose flop peak is not knowable portably.

Figures are dense (no 2:4 sparsity), float32 inputs; TF32 is the tensor-core rate used when a run
allows TF32 (`--tf32`). host_link_gbps is one direction of the host link (PCIe), the ceiling for
host<->device transfers.
"""
from __future__ import annotations

import re

# Each entry: (regex on the CUDA device name, figures). Order matters: specific names first, so
# "H100 PCIe" is not taken for the SXM part.
KNOWN_PEAKS = [
    # H100 NVL and other variants whose figures we have not checked: known-unknown, no % of peak
    # rather than a wrong one.
    (r"H100.*NVL", None),
    # NVIDIA H100 datasheet (nvidia.com/en-us/data-center/h100; also Glenn Lockwood's H100 page and
    # hpctech's datasheet table):
    # PCIe 80 GB: FP32 51 TFLOP/s, TF32 378 dense (756 sparse), HBM2e 2.0 TB/s; PCIe Gen5 x16.
    (r"H100.*PCI", {"model": "H100 PCIe 80GB", "fp32_tflops": 51.2, "tf32_tflops": 378.0,
                    "mem_gbps": 2000.0, "host_link_gbps": 64.0,
                    "source": "NVIDIA H100 datasheet"}),
    # SXM5 80 GB ("NVIDIA H100 80GB HBM3"): FP32 66.9 (=132 SMs x 128 x 2 x 1.98 GHz),
    # TF32 494.7 dense (989 sparse), HBM3 3.35 TB/s; host link PCIe Gen5 x16 (64 GB/s each way).
    (r"H100", {"model": "H100 SXM5 80GB", "fp32_tflops": 66.9, "tf32_tflops": 494.7,
               "mem_gbps": 3350.0, "host_link_gbps": 64.0,
               "source": "NVIDIA H100 datasheet"}),
    # NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200): H200 SXM 141 GB: FP32 67 TFLOP/s,
    # TF32 989 sparse (494.7 dense, same SMs and clocks as H100 SXM), HBM3e 4.8 TB/s. The NVL
    # variant has lower clocks; unchecked here, so unknown.
    (r"H200.*NVL", None),
    (r"H200", {"model": "H200 SXM 141GB", "fp32_tflops": 67.0, "tf32_tflops": 494.7,
               "mem_gbps": 4800.0, "host_link_gbps": 64.0,
               "source": "NVIDIA H200 datasheet"}),
    # NVIDIA A100 datasheet (nvidia-a100-datasheet, rev. 2021): FP32 19.5, TF32 156 dense (312
    # sparse); HBM2e 2039 GB/s (80GB SXM4), 1935 GB/s (80GB PCIe), HBM2 1555 GB/s (40GB);
    # PCIe Gen4 x16 (32 GB/s each way).
    (r"A100.*80\s*GB.*PCI|A100.*PCI.*80\s*GB", {
        "model": "A100 PCIe 80GB", "fp32_tflops": 19.5, "tf32_tflops": 156.0, "mem_gbps": 1935.0,
        "host_link_gbps": 32.0, "source": "NVIDIA A100 datasheet"}),
    (r"A100.*80\s*GB", {"model": "A100 SXM4 80GB", "fp32_tflops": 19.5, "tf32_tflops": 156.0,
                        "mem_gbps": 2039.0, "host_link_gbps": 32.0, "source": "NVIDIA A100 datasheet"}),
    (r"A100", {"model": "A100 40GB", "fp32_tflops": 19.5, "tf32_tflops": 156.0, "mem_gbps": 1555.0,
               "host_link_gbps": 32.0, "source": "NVIDIA A100 datasheet"}),
    # NVIDIA L4 datasheet (nvidia.com/en-us/data-center/l4): FP32 30.3, TF32 60 dense (120 sparse),
    # GDDR6 300 GB/s, PCIe Gen4 x16.
    (r"\bL4\b", {"model": "L4", "fp32_tflops": 30.3, "tf32_tflops": 60.0, "mem_gbps": 300.0,
                 "host_link_gbps": 32.0, "source": "NVIDIA L4 datasheet"}),
    # NVIDIA Ada Lovelace architecture whitepaper v1.1, appendix table (GeForce RTX 4090):
    # FP32 82.6, TF32 tensor 82.6 dense (165.2 sparse), GDDR6X 1008 GB/s, PCIe Gen4 x16.
    (r"RTX\s*4090", {"model": "GeForce RTX 4090", "fp32_tflops": 82.6, "tf32_tflops": 82.6,
                     "mem_gbps": 1008.0, "host_link_gbps": 32.0,
                     "source": "NVIDIA Ada Lovelace whitepaper v1.1"}),
]


def lookup(device_name: str | None):
    """The peak figures for a CUDA device name (as the driver spells it), or None if unknown."""
    if not device_name:
        return None
    for pattern, figures in KNOWN_PEAKS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return None if figures is None else dict(figures)
    return None


def pct_of_peak(peak, flops, nbytes, seconds, *, tf32=False, transfer=False):
    """Achieved fraction of the roofline, in percent, or None without a known peak.

    The attainable rate of an op with arithmetic intensity I = flops/bytes is
    min(peak_flops, I * peak_bandwidth): a memory-bound op is judged against bandwidth, a
    compute-bound one against flops, and one number covers both kinds.
    """
    if peak is None or seconds <= 0:
        return None
    if transfer:
        link = peak.get("host_link_gbps")
        return None if not link else 100.0 * nbytes / seconds / 1e9 / link
    bw = peak["mem_gbps"] * 1e9
    fl = (peak["tf32_tflops"] if tf32 else peak["fp32_tflops"]) * 1e12
    if flops > 0 and nbytes > 0:
        attainable = min(fl, flops / nbytes * bw)
        return 100.0 * (flops / seconds) / attainable
    if nbytes > 0:
        return 100.0 * (nbytes / seconds) / bw
    return None


# ---- measured copy bandwidth --------------------------------------------------------------------

def measure_copy_gbps(device_type: str, nbytes: int = 64 << 20, *, free_bytes=None):
    """Copy bandwidth (bytes read + bytes written per second, in GB/s) of one large buffer copy on
    the device, or None when it cannot be measured (unknown device type, not enough memory)."""
    if free_bytes is not None:
        nbytes = min(nbytes, int(free_bytes) // 4)  # src + dst, with room to spare
    if nbytes < (1 << 20):
        return None
    if device_type == "cpu":
        return _cpu_copy_gbps(nbytes)
    if device_type == "cuda":
        return _cuda_copy_gbps(nbytes)
    return None


def _cpu_copy_gbps(nbytes):
    import numpy as np

    from ..bench.timing import measure

    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    t = measure(lambda: np.copyto(dst, src), repeats=5, min_time=0.05, warmup=1)
    return 2 * src.nbytes / t.median_s / 1e9


def _cuda_copy_gbps(nbytes):
    import cupy as cp

    src = cp.ones(nbytes // 4, cp.float32)
    dst = cp.empty_like(src)
    cp.copyto(dst, src)  # first launch compiles/loads the copy kernel
    cp.cuda.Device().synchronize()
    # CUDA events time the GPU work itself; a handful of back-to-back copies hides launch gaps
    start, end = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(3):
        start.record()
        for _ in range(10):
            cp.copyto(dst, src)
        end.record()
        end.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, end) / 1e3 / 10)
    del src, dst
    cp.get_default_memory_pool().free_all_blocks()
    return 2 * nbytes / best / 1e9

