"""Which arguments each op writes, against the op table's `mutates` (generated over every op with samples).

`mutates` is what graph replay relies on to keep a node nobody reads (an optimizer step) and what
the optimizer bumps version counters by; an op whose kernel wrote an argument it does not declare
would silently change a caller's tensor (a wrong result far from its cause). So every sampled op is
run on cpu through the table on tensors that own their arrays, and the arrays compared before and
after: the changed ones must be declared, and each declared one must change in some sample.
"""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.dispatch import OPS, defop

SAMPLED = sorted(n for n, op in OPS.items() if op.samples is not None and op.kernels.get("cpu") is not None)


def _same(a, b):
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def _written(op, args, attrs):
    """The positions of the array arguments whose values the call changed."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    tensors = [dt.tensor(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a for a in args]
    with dt.no_grad():
        op(*tensors, **attrs)
    return {j for j, (b, t) in enumerate(zip(before, tensors)) if b is not None and not _same(b, np.asarray(t._data))}


@pytest.mark.parametrize("name", SAMPLED)
def test_an_op_writes_only_the_arguments_it_declares(name):
    op = OPS[name]
    declared = set(op.mutates)
    seen = set()
    for i, (args, attrs) in enumerate(op.samples(np.float64)):
        changed = _written(op, args, attrs)
        assert changed <= declared, (f"{name} sample {i}: the kernel wrote {[op.inputs[j] for j in sorted(changed)]}"
                                     f" but the op declares mutates={[op.inputs[j] for j in sorted(declared)]}")
        seen |= changed
    assert seen == declared, (f"{name}: declares mutates={[op.inputs[j] for j in sorted(declared)]} but its samples "
                              f"only ever wrote {[op.inputs[j] for j in sorted(seen)]}")


def test_every_op_that_writes_an_argument_is_sampled():
    """The test above must reach every op that declares writes (else a wrong declaration goes unseen)."""
    assert {n for n, op in OPS.items() if op.mutates} <= set(SAMPLED)


def test_the_declaration_and_the_name_agree():
    """mutates= names inputs, and only ops named with PyTorch's trailing '_' may declare it (and they must)."""
    with pytest.raises(ValueError, match="not among its inputs"):
        defop("_probe_bad_name_", ("x", "y"), mutates=("z",))
    with pytest.raises(ValueError, match="it declares none"):
        defop("_probe_undeclared_", ("x",))
    with pytest.raises(ValueError, match="lacks the '_'"):
        defop("_probe_unmarked", ("x",), mutates="x")
    assert not any(n.startswith("_probe") for n in OPS)  # a refused declaration leaves the table as it was


def test_replay_keeps_what_an_op_writes_and_drops_what_nobody_reads():
    """graph replay's liveness reads the table: an op that writes (copy_ under an in-place add) stays,
    a pure op whose output nobody reads goes."""
    from devtensor.compiler import fusion

    assert fusion.has_effect("copy_") and fusion.has_effect("adam_step_")
    assert not fusion.has_effect("add") and not fusion.has_effect("matmul")
    assert fusion.has_effect("@host") and fusion.writes_input("no such op")  # unknown: kept, to be safe
