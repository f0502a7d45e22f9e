"""The compiled loops of :mod:`training.treeshap` (numba; compiled once, cached on disk).

Kept apart so that importing ``training.treeshap`` never compiles anything: a process only
pays the compilation (or the cache read) when it first explains with the fast path.

Rows are explained in blocks: a block of the input is turned feature-major once, then
every tree passes over the whole block node by node (each split's decision, and the
pattern of agreement entering each node, from its parent's) and table by table, so each
inner loop runs over contiguous rows (the compiler vectorises them) and one tree's nodes
and tables stay in cache while they are used.
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
           tree_unit_start: np.ndarray, node_feature: np.ndarray, node_threshold: np.ndarray, node_kind: np.ndarray,
           node_nan_left: np.ndarray, node_zero_default: np.ndarray, node_default_left: np.ndarray,
           node_cat_start: np.ndarray, node_cat_end: np.ndarray, cat_left: np.ndarray, node_parent: np.ndarray,
           node_is_left: np.ndarray, node_slot: np.ndarray, node_new: np.ndarray, unit_node: np.ndarray,
           unit_slot_start: np.ndarray, slot_feature: np.ndarray, unit_table_start: np.ndarray,
           table: np.ndarray) -> None:
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
    left = np.empty((widest, n_rows), dtype=np.int64)
    entering = np.empty((widest, n_rows), dtype=np.int64)
    for t in range(n_trees):
        first = tree_node_start[t]
        # Every split's decision for every row of the block (LightGBM's NumericalDecision /
        # CategoricalDecision; the missing-value rules are folded into nan_left and
        # zero_default when the trees are read). 1: left.
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
                    row_left[r] = 1 if goes else 0
            else:
                threshold = node_threshold[k]
                nan_left = 1 if node_nan_left[k] else 0
                if node_zero_default[k]:
                    default = 1 if node_default_left[k] else 0
                    for r in range(n_rows):
                        v = column[r]
                        if math.isnan(v) or v == 0.0:
                            row_left[r] = default
                        else:
                            row_left[r] = 1 if v <= threshold else 0
                else:
                    for r in range(n_rows):
                        v = column[r]
                        row_left[r] = nan_left if math.isnan(v) else (1 if v <= threshold else 0)
            # The pattern entering this node: its parent's, with the parent's own condition
            # (a new bit for a feature first split there, else and-ed into its bit).
            mine = entering[k - first]
            parent = node_parent[k]
            if parent < 0:
                for r in range(n_rows):
                    mine[r] = 0
            else:
                above = entering[parent]
                decided = left[parent]
                bit = np.int64(1) << node_slot[first + parent]
                want = 1 if node_is_left[k] else 0
                if node_new[first + parent]:
                    for r in range(n_rows):
                        mine[r] = above[r] | (bit if decided[r] == want else 0)
                else:
                    for r in range(n_rows):
                        mine[r] = above[r] & ~(0 if decided[r] == want else bit)
        # The leaves below each node: one table row per (pattern entering, decision).
        for u in range(tree_unit_start[t], tree_unit_start[t + 1]):
            node = unit_node[u]
            s0 = unit_slot_start[u]
            d = unit_slot_start[u + 1] - s0
            base = unit_table_start[u]
            above = entering[node]
            decided = left[node]
            for i in range(d):
                target = acc[slot_feature[s0 + i]]
                for r in range(n_rows):
                    target[r] += table[base + ((above[r] << 1) | decided[r]) * d + i]
    for r in range(n_rows):
        for f in range(n_features):
            out[lo + r, f] += acc[f, r]


@numba.njit(cache=True, nogil=True, parallel=True)
def _parallel(matrix, out, tree_node_start, tree_unit_start, node_feature, node_threshold, node_kind,  # type: ignore[no-untyped-def]
              node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end, cat_left,
              node_parent, node_is_left, node_slot, node_new, unit_node, unit_slot_start, slot_feature,
              unit_table_start, table, block):
    n = matrix.shape[0]
    n_blocks = (n + block - 1) // block
    for b in numba.prange(n_blocks):
        _block(b * block, min(n, (b + 1) * block), matrix, out, tree_node_start, tree_unit_start, node_feature,
               node_threshold, node_kind, node_nan_left, node_zero_default, node_default_left, node_cat_start,
               node_cat_end, cat_left, node_parent, node_is_left, node_slot, node_new, unit_node, unit_slot_start,
               slot_feature, unit_table_start, table)


@numba.njit(cache=True, nogil=True)
def _serial(matrix, out, tree_node_start, tree_unit_start, node_feature, node_threshold, node_kind,  # type: ignore[no-untyped-def]
            node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end, cat_left,
            node_parent, node_is_left, node_slot, node_new, unit_node, unit_slot_start, slot_feature,
            unit_table_start, table, block):
    n = matrix.shape[0]
    for lo in range(0, n, block):
        _block(lo, min(n, lo + block), matrix, out, tree_node_start, tree_unit_start, node_feature, node_threshold,
               node_kind, node_nan_left, node_zero_default, node_default_left, node_cat_start, node_cat_end,
               cat_left, node_parent, node_is_left, node_slot, node_new, unit_node, unit_slot_start, slot_feature,
               unit_table_start, table)


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
