"""DataLoader, datasets and collation: batches, seeds, errors."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.utils.data import (ConcatDataset, DataLoader, Dataset, IterableDataset, Subset, TensorDataset,
                                  default_collate, random_split)


def _ds(n=10):
    x = dt.arange(n * 2, dtype=dt.float32).reshape(n, 2)
    y = dt.arange(n)
    return TensorDataset(x, y)


def test_batches_cover_the_dataset_in_order():
    batches = list(DataLoader(_ds(10), batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(10))
    np.testing.assert_array_equal(batches[0][0].numpy(), np.arange(8).reshape(4, 2))
    assert len(DataLoader(_ds(10), batch_size=4)) == 3


def test_drop_last():
    batches = list(DataLoader(_ds(10), batch_size=4, drop_last=True))
    assert [len(b[1]) for b in batches] == [4, 4]
    assert len(DataLoader(_ds(10), batch_size=4, drop_last=True)) == 2


def test_shuffle_is_a_permutation_and_seeded():
    def epoch(loader):
        return np.concatenate([b[1].numpy() for b in loader])

    dt.manual_seed(3)
    a = epoch(DataLoader(_ds(50), batch_size=7, shuffle=True))
    dt.manual_seed(3)
    b = epoch(DataLoader(_ds(50), batch_size=7, shuffle=True))
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == list(range(50)) and a.tolist() != list(range(50))
    c = epoch(DataLoader(_ds(50), batch_size=7, shuffle=True, generator=5))
    d = epoch(DataLoader(_ds(50), batch_size=7, shuffle=True, generator=5))
    np.testing.assert_array_equal(c, d)
    # x rows follow their labels through the shuffle
    for x, y in DataLoader(_ds(50), batch_size=7, shuffle=True):
        np.testing.assert_array_equal(x.numpy()[:, 0], 2 * y.numpy())


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_bad_batch_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(_ds(), batch_size=bad)


def test_tensor_dataset_checks_lengths():
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(dt.zeros(3, 2), dt.zeros(4))


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.full((2,), i, dtype=np.float64), "y": i * i}


def test_default_collate_keeps_structure_and_dtype():
    (b,) = list(DataLoader(Squares(), batch_size=5))
    assert b["x"].dtype == dt.float64 and tuple(b["x"].shape) == (5, 2)
    assert b["y"].tolist() == [0, 1, 4, 9, 16] and b["y"].dtype == dt.int64
    (c,) = list(DataLoader(Squares(), batch_size=5, dtype=dt.float32))
    assert c["x"].dtype == dt.float32  # the dtype= option (float64 creeping in from numpy)
    out = default_collate([(dt.ones(2), 1), (dt.zeros(2), 2)])
    assert isinstance(out, tuple) and out[0].tolist() == [[1, 1], [0, 0]] and out[1].tolist() == [1, 2]


def test_custom_collate_and_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

    batches = list(DataLoader(Stream(), batch_size=3))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    sums = list(DataLoader(Squares(), batch_size=2, collate_fn=lambda b: sum(s["y"] for s in b)))
    assert sums == [1, 13, 16]


def test_subset_concat_random_split():
    ds = _ds(10)
    a, b = random_split(ds, [7, 3], generator=0)
    assert len(a) == 7 and len(b) == 3
    idx = sorted(int(a[i][1]) for i in range(7)) + sorted(int(b[i][1]) for i in range(3))
    assert sorted(idx) == list(range(10))
    assert int(Subset(ds, [4, 2])[1][1]) == 2
    cat = ConcatDataset([ds, _ds(3)])
    assert len(cat) == 13 and int(cat[11][1]) == 1
    with pytest.raises(ValueError, match="sum of input lengths"):
        random_split(ds, [5, 6])
