"""The compiled loops of :mod:`training.treeshap` (numba; compiled once, cached on disk).

Kept apart so that importing ``training.treeshap`` never compiles anything: a process only
pays the compilation (or the cache read) when it first explains with the fast path.

Rows are explained in blocks: a block of the input is turned feature-major once, then
every tree passes over the whole block node by node and leaf by leaf, so each inner loop
runs over contiguous rows (the compiler vectorises the decisions and the patterns) and one
tree's nodes and tables stay in cache while they are used.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Split kinds (training.treeshap): NUMERIC, CATEGORICAL.
_CATEGORICAL = 1
#: LightGBM's kZeroThreshold, a float literal (1e-35f): an input this close to zero is read
#: as zero before any split sees it, and a split of missing type Zero treats it as missing.
_ZERO = float(np.float32(1e-35))


@numba.njit(cache=True, nogil=True)
def _block(lo: int, hi: int, matrix: np.ndarray, out: np.ndarray, tree_node_start: np.ndarray,
           tree_leaf_start: np.ndarray, node_feature: np.ndarray, node_threshold: np.ndarray, node_kind: np.ndarray,
           node_nan_left: np.ndarray, node_zero_default: np.ndarray, node_default_left: np.ndarray,
           node_cat_start: np.ndarray, node_cat_end: np.ndarray, cat_left: np.ndarray, leaf_path_start: np.ndarray,
           path_node: np.ndarray, path_left: np.ndarray, path_slot: np.ndarray, leaf_slot_start: np.ndarray,
           slot_feature: np.ndarray, leaf_table_start: np.ndarray, table: np.ndarray) -> None:
    n_rows = hi - lo
    n_features = matrix.shape[1]
    n_trees = len(tree_node_start) - 1
    widest = 1
    for t in range(n_trees):
        widest = max(widest, tree_node_start[t + 1] - tree_node_start[t])
    x = np.empty((n_features, n_rows))
    for r in range(n_rows):
        for f in range(n_features):
            v = matrix[lo + r, f]
            # LightGBM keeps only values beyond its zero threshold (or missing) of a row.
            x[f, r] = 0.0 if abs(v) <= _ZERO else v
    acc = np.zeros((n_features, n_rows))
    left = np.empty((widest, n_rows), dtype=np.uint8)
    pattern = np.empty(n_rows, dtype=np.int64)
    for t in range(n_trees):
        first = tree_node_start[t]
        # Every split's decision for every row of the block (LightGBM's NumericalDecision /
        # CategoricalDecision; the missing-value rules are folded into nan_left and
        # zero_default when the trees are read).
        for k in range(first, tree_node_start[t + 1]):
            column = x[node_feature[k]]
            row_left = left[k - first]
            if node_kind[k] == _CATEGORICAL:
                c0, c1 = node_cat_start[k], node_cat_end[k]
                for r in range(n_rows):
                    v = column[r]
                    goes = False
                    if not math.isnan(v):
                        code = int(v)  # truncation toward zero, as LightGBM's static_cast<int>
                        goes = code >= 0 and code < c1 - c0 and cat_left[c0 + code]
                    row_left[r] = goes
            else:
                threshold = node_threshold[k]
                nan_left = node_nan_left[k]
                if node_zero_default[k]:
                    default = node_default_left[k]
                    for r in range(n_rows):
                        v = column[r]
                        if math.isnan(v) or v == 0.0:
                            row_left[r] = default
                        else:
                            row_left[r] = v <= threshold
                else:
                    for r in range(n_rows):
                        v = column[r]
                        row_left[r] = nan_left if math.isnan(v) else v <= threshold
        # Each leaf: which of its path features each row follows, then its table row.
        for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
            s0 = leaf_slot_start[leaf]
            d = leaf_slot_start[leaf + 1] - s0
            full = (1 << d) - 1
            for r in range(n_rows):
                pattern[r] = full
            for q in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
                decided = left[path_node[q] - first]
                want = np.uint8(1) if path_left[q] else np.uint8(0)
                clear = ~(np.int64(1) << path_slot[q])
                for r in range(n_rows):
                    if decided[r] != want:
                        pattern[r] &= clear
            base = leaf_table_start[leaf]
            for i in range(d):
                target = acc[slot_feature[s0 + i]]
                for r in range(n_rows):
                    target[r] += table[base + pattern[r] * d + i]
    for r in range(n_rows):
        for f in range(n_features):
            out[lo + r, f] += acc[f, r]


@numba.njit(cache=True, nogil=True, parallel=True)
def _parallel(matrix, out, tree_node_start, tree_leaf_start, node_feature, node_threshold, node_kind,  # type: ignore[no-untyped-def]
              node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end, cat_left,
              leaf_path_start, path_node, path_left, path_slot, leaf_slot_start, slot_feature, leaf_table_start,
              table, block):
    n = matrix.shape[0]
    n_blocks = (n + block - 1) // block
    for b in numba.prange(n_blocks):
        _block(b * block, min(n, (b + 1) * block), matrix, out, tree_node_start, tree_leaf_start, node_feature,
               node_threshold, node_kind, node_nan_left, node_zero_default, node_default_left, node_cat_start,
               node_cat_end, cat_left, leaf_path_start, path_node, path_left, path_slot, leaf_slot_start,
               slot_feature, leaf_table_start, table)


@numba.njit(cache=True, nogil=True)
def _serial(matrix, out, tree_node_start, tree_leaf_start, node_feature, node_threshold, node_kind,  # type: ignore[no-untyped-def]
            node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end, cat_left,
            leaf_path_start, path_node, path_left, path_slot, leaf_slot_start, slot_feature, leaf_table_start,
            table, block):
    n = matrix.shape[0]
    for lo in range(0, n, block):
        _block(lo, min(n, lo + block), matrix, out, tree_node_start, tree_leaf_start, node_feature, node_threshold,
               node_kind, node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end,
               cat_left, leaf_path_start, path_node, path_left, path_slot, leaf_slot_start, slot_feature,
               leaf_table_start, table)


def explain_rows(parallel: bool, *args):  # type: ignore[no-untyped-def]
    """Add every tree's contributions to ``out`` (rows, features + 1) for ``matrix``'s rows
    (arguments in :func:`_parallel`'s order)."""
    (_parallel if parallel else _serial)(*args)


@numba.njit(cache=True)
def leaf_table(value: float, shares: np.ndarray) -> np.ndarray:
    """See :func:`training.treeshap.leaf_table` (the module's formula, compiled)."""
    d = len(shares)
    # Shapley weights |S|! (d - |S| - 1)! / d!, by their ratio from one size to the next.
    weight = np.empty(max(d, 1))
    weight[0] = 1.0 / max(d, 1)
    for s in range(d - 1):
        weight[s + 1] = weight[s] * (s + 1) / (d - s - 1)
    table = np.empty((1 << d, d))
    e = np.empty(d + 1)
    for p in range(1 << d):
        for i in range(d):
            not_followed = 1.0
            e[0] = 1.0
            a = 0
            for j in range(d):
                if j == i:
                    continue
                if (p >> j) & 1:
                    # Elementary symmetric sums of the shares of the features the row follows.
                    a += 1
                    e[a] = 0.0
                    for k in range(a, 0, -1):
                        e[k] += shares[j] * e[k - 1]
                else:
                    not_followed *= shares[j]
            total = 0.0
            for k in range(a + 1):
                total += weight[a - k] * e[k]
            followed = float((p >> i) & 1)
            table[p, i] = value * (followed - shares[i]) * not_followed * total
    return table.reshape(-1)
