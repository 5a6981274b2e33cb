"""mode="reduce-overhead" on cuda: a replay's kernels launched as CUDA graphs (CuPy stream capture).

A plan is split into segments: runs of kernel steps become one CUDA graph each; the steps a graph
cannot hold run as Python between the launches, as in the normal replay:
  * host calls (an optimizer's step, zero_grad, a scheduler's step): Python that reads learning rates
    and step counts afresh and launches kernels with them as scalar arguments;
  * gradient deliveries to .grad (Python: set when None, else add);
  * random draws (a captured draw would repeat the same numbers on every launch) and device moves.
A training step thus launches one graph for its forward and backward between zero_grad and the
deliveries, and runs the optimizer's step as before.

A graph replays the same kernels on the same addresses, so:
  * inputs are copied into static buffers allocated at capture; a value a Python segment makes and a
    graph reads is copied into the buffer the graph was captured with;
  * everything allocated while capturing comes from a memory pool of the runner's own, never
    returned to CuPy's pool while the graphs live (a kernel's freed temporaries must not become
    another array's storage);
  * externals (parameters, buffers) are read at the address they had at capture: when a tensor's
    array was replaced (`p.data = ...`) the graphs are captured again;
  * outputs and gradients are copied out of the graph's memory, which the next launch overwrites.
A capture that fails (a kernel that synchronises or reads a size on the host) warns once and the
variant runs the normal replay from then on.
"""
from __future__ import annotations

import warnings

from .. import dtypes as _dt
from ..graph.ir import node_refs
from .fusion import writes_input
from .step_plan import _GRAD, _HOST, StepPlan

_DRAWS = ("rand", "randn", "randint", "randperm")
# draws from tensors of parameters: they read values computed before them and check them on the host, so
# they run outside the graphs, in their place, as host calls do (a graph would replay the same numbers)
_SAMPLES = ("multinomial", "bernoulli", "normal", "poisson")


class GraphRunner:
    def __init__(self, graph, device, cupy):
        self.plan = StepPlan(graph, device)
        # every gradient is copied on delivery: the array it comes from is the graph's, reused next launch
        self.plan.shared = set(range(self.plan.n_values))
        self.cp = cupy
        self.device = device
        self.segments = _segments(self.plan)
        self._steps = [[self.plan.steps[i] for i in idx] for idx, _ in self.segments]
        self.failed = None          # why capture failed (the caller then runs the normal replay)
        self._graphs = None         # per segment: a cupy Graph, or None for a Python segment
        self._env = None            # the arrays the graphs were captured with
        self._static = None         # value id -> buffer a graph reads, for values made outside the graphs
        self._externals = None      # (tensor, array at capture)
        self._made = None           # per segment: the ids a Python segment makes that a graph reads
        self._pool = None
        self.captures = 0
        self.launches = 0

    def run(self, input_arrays):
        """The env after one replay, or None if the graphs cannot be captured (self.failed says why)."""
        if self.failed is not None:
            return None
        if self._graphs is None or any(t._data is not a for t, a in self._externals):
            if not self._capture(input_arrays):
                return None
        env, plan, static = self._env, self.plan, self._static
        for vid, a in zip(plan.inputs, input_arrays):
            static[vid][...] = a
        stream = self.cp.cuda.get_current_stream()
        for steps, graph, made in zip(self._steps, self._graphs, self._made):
            if graph is None:
                plan.execute(env, steps)
                for vid in made:  # a value a later graph reads: into the buffer that graph was captured with
                    static[vid][...] = env[vid]
                    env[vid] = static[vid]
            else:
                graph.launch(stream)
                self.launches += 1
        return env

    def _capture(self, input_arrays):
        """Capture every graph segment; nothing runs for real (the caller's replay follows), so a
        failure leaves no half-done step behind."""
        cp, plan = self.cp, self.plan
        self._pool = pool = cp.cuda.MemoryPool()
        stream = cp.cuda.Stream(non_blocking=True)
        graphs, made = [], []
        try:
            with cp.cuda.using_allocator(pool.malloc):
                env = plan.start([a.copy() for a in input_arrays])
                static = {vid: env[vid] for vid in plan.inputs}
                self._externals = [(t, t._data) for _, t in plan.externals if hasattr(t, "_data")]
                read = _read_by_graphs(plan, self.segments)
                for (idx, is_graph), steps in zip(self.segments, self._steps):
                    if not is_graph:  # its values a graph reads get buffers now, filled on every replay
                        ids = [o for i in idx for o in plan.nodes[i].outputs if o in read]
                        for o in ids:
                            v = plan.graph.values[o]
                            static[o] = env[o] = cp.zeros(v.shape, dtype=_dt._NAMES[v.dtype].np)
                        made.append(ids)
                        graphs.append(None)
                        continue
                    made.append(())
                    with stream:
                        # CuPy's default capture mode is relaxed: the private pool may cudaMalloc meanwhile
                        stream.begin_capture()
                        try:
                            plan.execute(env, steps)
                        finally:
                            g = stream.end_capture()
                    graphs.append(g)
        except Exception as e:  # noqa: BLE001 - anything a stream capture refuses: the normal replay
            self.failed = f"{type(e).__name__}: {e}"
            warnings.warn(f"compile(mode='reduce-overhead'): the replay could not be captured as a CUDA graph "
                          f"({self.failed}); this function runs the normal replay instead", RuntimeWarning,
                          stacklevel=4)
            self._graphs = None
            return False
        self._graphs, self._env, self._static, self._made = graphs, env, static, made
        self.captures += 1
        return True


def _segments(plan):
    """[(step indices, is_graph)] covering plan.steps in an order equal in effect to the plan's: between
    two host calls (or device moves), random draws (they read no values) go first and gradient
    deliveries (kernels never read .grad) last, so the kernels in between form one graph; a region
    whose kernels write in place keeps its deliveries where they were."""
    out = []
    region = []

    def close():
        if not region:
            return
        inplace = any(writes_input(plan.nodes[i].op) for i in region if plan.steps[i][0] not in (_HOST, _GRAD))
        draws = [i for i in region if plan.nodes[i].op in _DRAWS]
        grads = [] if inplace else [i for i in region if plan.steps[i][0] == _GRAD]
        rest = [i for i in region if i not in draws and i not in grads]
        for i in draws + rest + grads:
            graphable = plan.steps[i][0] not in (_HOST, _GRAD) and plan.nodes[i].op not in _DRAWS
            if out and out[-1][1] == graphable:
                out[-1][0].append(i)
            else:
                out.append(([i], graphable))
        region.clear()

    for i, (step, node) in enumerate(zip(plan.steps, plan.nodes)):
        if step[0] == _HOST or node.op == "copy_to" or node.op in _SAMPLES:
            close()
            out.append(([i], False))
        else:
            region.append(i)
    close()
    merged = []
    for idx, g in out:
        if merged and merged[-1][1] == g:
            merged[-1][0].extend(idx)
        else:
            merged.append((idx, g))
    return merged


def _read_by_graphs(plan, segments):
    return {r.id for idx, is_graph in segments if is_graph for i in idx for r in node_refs(plan.nodes[i])}
