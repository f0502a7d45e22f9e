"""Exact TreeSHAP for LightGBM boosters, several times faster than ``pred_contrib`` on batches.

LightGBM's ``predict(pred_contrib=True)`` runs the path-dependent TreeSHAP recursion for
every row and every tree: O(leaves × depth²) per tree and row. The same values can be had
for O(leaves × depth) per tree and row, because a leaf's share of every contribution
depends on a row only through which of the leaf's path features the row agrees with:

    for a leaf with value v and distinct path features 1..d, write z_j for the share of
    training rows that follow the path's splits on feature j (the product of
    child count / parent count over its nodes on the path) and o_j ∈ {0, 1} for whether
    the row follows all of them. Feature i then receives

        v · (o_i − z_i) · Π_{j ∉ A, j ≠ i} z_j · Σ_{S ⊆ A} |S|! (d − |S| − 1)! / d! · Π_{j ∈ A \\ S} z_j

    where A is the set of the other features the row follows (o_j = 1).

That is the closed form of the path-dependent recursion, repeated features on a path
merged as LightGBM merges them (shares multiplied, agreement and-ed). So every leaf gets a
table, one row of d contributions per pattern of agreement (2^d rows; d ≤ max_depth), built
once per model; explaining a row is then, per tree, its split decisions and one table
lookup per leaf. The tables and sums are float64, like LightGBM's.

The split decisions follow LightGBM's own (``Tree::NumericalDecision`` and
``CategoricalDecision``): numeric ``x <= threshold`` goes left; a missing value goes the
split's default way when its missing type is NaN, and reads as 0 when the split saw no
missing values in training (missing type None); with missing type Zero, zero goes the
default way; a category goes left when it is in the split's list, anything else (missing,
negative, unseen) right; and before any split, an input within LightGBM's zero threshold
(1e-35 as a float32) reads as zero. Because one mistake in such a rule would silently change reasons,
:func:`checked_explainer` never trusts the tables blindly: it compares them with
``pred_contrib`` on sample rows (real rows, the same rows with values removed, and rows
placed exactly on every threshold) and falls back to ``pred_contrib`` when they differ by
more than ``tolerance`` × the largest contribution, or when the model cannot be read.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Split kinds and missing types in the flattened trees.
NUMERIC, CATEGORICAL = 0, 1
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
_DUMPED_INFINITY = 1e300
#: Rows per block of the kernel: a block's contributions and inputs stay in cache while
#: every tree passes over them.
BLOCK_ROWS = 256


class UnsupportedModel(ValueError):
    """A booster this explainer cannot read (linear trees, a path deeper than ``max_depth``…)."""


@dataclass(frozen=True)
class FlatTrees:
    """The trees of one output (class) of a booster as flat arrays, with the leaf tables.

    Internal nodes are numbered per tree as LightGBM numbers them (``split_index``: a
    parent before its children). Each one carries the slot its feature takes among the
    distinct features of the path from the root (``slot``; ``new`` when the feature first
    appears there), so a row's pattern of agreement is passed down the tree one node at a
    time. The leaves below one node (one leaf or two siblings) share one table, indexed by
    the pattern entering the node and the node's own decision.
    """

    n_features: int
    #: Per tree: start of its internal nodes and of its leaf tables (length trees + 1).
    tree_node_start: np.ndarray
    tree_unit_start: np.ndarray
    #: Per internal node: its feature and threshold, its kind (NUMERIC, CATEGORICAL), which
    #: way a missing value goes (``nan_left``), and for missing type Zero that zero and
    #: missing go the default way (``zero_default``, ``default_left``).
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_kind: np.ndarray
    node_nan_left: np.ndarray
    node_zero_default: np.ndarray
    node_default_left: np.ndarray
    #: A categorical split's lookup: ``cat_left[start + code]`` for codes below end - start.
    node_cat_start: np.ndarray
    node_cat_end: np.ndarray
    #: Per internal node: its parent (number within the tree, -1 for the root), whether it is
    #: its parent's left child, and its feature's slot on its path (``new``: first there).
    node_parent: np.ndarray
    node_is_left: np.ndarray
    node_slot: np.ndarray
    node_new: np.ndarray
    cat_left: np.ndarray
    #: Per table (the leaves below one node): the node (number within the tree), its
    #: distinct path features ``slot_feature[start:end]`` and where its rows start.
    unit_node: np.ndarray
    unit_slot_start: np.ndarray
    slot_feature: np.ndarray
    unit_table_start: np.ndarray
    table: np.ndarray
    #: Sum over trees of the cover-weighted mean leaf value: pred_contrib's last column.
    expected: float

    @property
    def n_trees(self) -> int:
        return len(self.tree_node_start) - 1


def flatten(booster: Any, class_index: int = 0, num_iteration: int | None = None) -> FlatTrees:
    """The trees of ``booster`` that score class ``class_index`` (every tree of a binary or
    regression model), up to ``num_iteration`` iterations, as flat arrays and tables."""
    dump = booster.dump_model(num_iteration=num_iteration)
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    if not 0 <= class_index < per_iteration:
        raise UnsupportedModel(f"class {class_index} of a model with {per_iteration} outputs")
    if dump.get("average_output"):
        raise UnsupportedModel("averaged trees (random forest mode)")
    builder = _Builder(int(dump["max_feature_idx"]) + 1)
    for info in dump["tree_info"][class_index::per_iteration]:
        builder.add(info)
    return builder.finish()


#: Node fields as the builder collects them (the FlatTrees node arrays, in order).
_NODE_FIELDS = ("node_feature", "node_threshold", "node_kind", "node_nan_left", "node_zero_default",
                "node_default_left", "node_cat_start", "node_cat_end", "node_parent", "node_is_left",
                "node_slot", "node_new")
_NODE_TYPES = (np.int64, np.float64, np.int8, np.bool_, np.bool_, np.bool_, np.int64, np.int64, np.int64,
               np.bool_, np.int64, np.bool_)


class _Builder:
    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.tree_node_start, self.tree_unit_start = [0], [0]
        self.nodes: list[tuple[Any, ...]] = []
        self.cat_left: list[bool] = []
        self.unit_node: list[int] = []
        self.unit_slot_start, self.slot_feature = [0], []  # type: ignore[var-annotated]
        self.unit_table_start, self.tables = [0], []  # type: ignore[var-annotated]
        self.expected = 0.0

    def add(self, info: dict[str, Any]) -> None:
        root = info["tree_structure"]
        if "split_index" not in root:
            # A one-leaf tree moves every row alike: it only adds to the expected value.
            self.expected += float(root["leaf_value"])
            self.tree_node_start.append(len(self.nodes))
            self.tree_unit_start.append(len(self.unit_node))
            return
        root_count = float(root["internal_count"])
        found: dict[int, tuple[Any, ...]] = {}
        # Depth first, carrying the path: its distinct features in slot order and each one's
        # share of training rows (child count / parent count over its nodes on the path).
        stack: list[tuple[dict[str, Any], int, bool, list[int], list[float]]] = [(root, -1, False, [], [])]
        while stack:
            node, parent, is_left, slots, shares = stack.pop()
            k = int(node["split_index"])
            feature = int(node["split_feature"])
            new = feature not in slots
            slot = len(slots) if new else slots.index(feature)
            found[k] = (*self._node(node), parent, is_left, slot, new)
            child_slots = slots + [feature] if new else slots
            count = float(node["internal_count"])
            if count <= 0:  # never in LightGBM's own trees: the shares would be undefined
                raise UnsupportedModel("a split with no training rows")
            leaves = []
            for child, left in ((node["left_child"], True), (node["right_child"], False)):
                child_count = float(child["internal_count"] if "split_index" in child else child["leaf_count"])
                child_shares = shares + [1.0] if new else list(shares)
                child_shares[slot] *= child_count / count
                if "split_index" in child:
                    stack.append((child, k, left, child_slots, child_shares))
                else:
                    leaves.append((child, left, child_shares))
            if leaves:
                self._unit(k, len(slots), slot, new, child_slots, leaves, root_count)
        # The kernel passes patterns down in split_index order: every parent before its children.
        if sorted(found) != list(range(len(found))) or any(found[k][8] >= k for k in found):
            raise UnsupportedModel("split indexes that do not number parents before children")
        self.nodes.extend(found[k] for k in range(len(found)))
        self.tree_node_start.append(len(self.nodes))
        self.tree_unit_start.append(len(self.unit_node))

    def _unit(self, k: int, d_parent: int, slot: int, new: bool, slots: list[int],
              leaves: list[tuple[dict[str, Any], bool, list[float]]], root_count: float) -> None:
        """The table of the leaves below node ``k``: row (p << 1) | b for the pattern p
        entering the node and its decision b (1: left), one column per path feature."""
        d = len(slots)
        if d > 20:
            raise UnsupportedModel(f"a path with {d} distinct features")
        p = np.arange(1 << d_parent, dtype=np.int64)[:, None]
        b = np.array([[0, 1]], dtype=np.int64)
        rows = ((p << 1) | b).ravel()
        table = np.zeros((2 << d_parent, d))
        for leaf, left, shares in leaves:
            if "leaf_coeff" in leaf:
                raise UnsupportedModel("linear trees (a linear model in each leaf)")
            value = float(leaf["leaf_value"])
            follows = b if left else 1 - b
            # The leaf's pattern: the one entering the node with the node's own condition on
            # its feature (a new bit, or and-ed into the feature's bit).
            pattern = (p | (follows << slot)) if new else (p & ~((1 - follows) << slot))
            table[rows] += leaf_table(value, np.array(shares)).reshape(1 << d, d)[pattern.ravel()]
            self.expected += value * float(leaf["leaf_count"]) / root_count
        self.tables.append(table.reshape(-1))
        self.unit_node.append(k)
        self.slot_feature.extend(slots)
        self.unit_slot_start.append(len(self.slot_feature))
        self.unit_table_start.append(self.unit_table_start[-1] + table.size)

    def _node(self, node: dict[str, Any]) -> tuple[int, float, int, bool, bool, bool, int, int]:
        feature = int(node["split_feature"])
        missing = _MISSING.get(str(node.get("missing_type", "None")))
        if missing is None:
            raise UnsupportedModel(f"missing type {node.get('missing_type')!r}")
        default_left = bool(node["default_left"])
        start = len(self.cat_left)
        if node["decision_type"] == "==":
            codes = [int(c) for c in str(node["threshold"]).split("||")]
            if min(codes) < 0:
                raise UnsupportedModel("a negative category code")
            lookup = [False] * (max(codes) + 1)
            for code in codes:
                lookup[code] = True
            self.cat_left.extend(lookup)
            return feature, 0.0, CATEGORICAL, False, False, default_left, start, len(self.cat_left)
        if node["decision_type"] != "<=":
            raise UnsupportedModel(f"decision type {node['decision_type']!r}")
        threshold = float(node["threshold"])
        # The JSON dump writes an infinite threshold as ±1e300 (LightGBM's AvoidInf); the
        # model itself compares with infinity (a split that only sends missing values apart).
        if abs(threshold) >= _DUMPED_INFINITY:
            threshold = math.copysign(math.inf, threshold)
        # Missing type NaN: a missing value goes the default way; None (no missing value in
        # training): it reads as 0; Zero: zero and missing go the default way.
        nan_left = default_left if missing == MISSING_NAN else 0.0 <= threshold
        return feature, threshold, NUMERIC, nan_left, missing == MISSING_ZERO, default_left, start, start

    def finish(self) -> FlatTrees:
        columns = list(zip(*self.nodes)) if self.nodes else [[] for _ in _NODE_FIELDS]
        nodes = {name: np.array(column, dtype=kind) for name, column, kind in zip(_NODE_FIELDS, columns, _NODE_TYPES)}
        return FlatTrees(
            n_features=self.n_features,
            tree_node_start=np.array(self.tree_node_start, dtype=np.int64),
            tree_unit_start=np.array(self.tree_unit_start, dtype=np.int64),
            cat_left=np.array(self.cat_left, dtype=np.bool_),
            unit_node=np.array(self.unit_node, dtype=np.int64),
            unit_slot_start=np.array(self.unit_slot_start, dtype=np.int64),
            slot_feature=np.array(self.slot_feature, dtype=np.int64),
            unit_table_start=np.array(self.unit_table_start, dtype=np.int64),
            table=np.concatenate(self.tables) if self.tables else np.zeros(0),
            expected=self.expected,
            **nodes,
        )


def leaf_table(value: float, shares: np.ndarray) -> np.ndarray:
    """One leaf's contributions, shape (2^d, d) flattened: row p holds what each of the d
    path features receives from this leaf when the row follows exactly the features whose
    bit is set in p (the module's formula; compiled, see ``_treeshap_kernel``)."""
    from training import _treeshap_kernel

    return _treeshap_kernel.leaf_table(float(value), np.ascontiguousarray(shares, dtype=np.float64))


# ---------------------------------------------------------------- the kernel

_KERNEL: Any = None
_KERNEL_LOCK = threading.Lock()


def _kernel() -> Any:
    """The compiled kernel (numba, compiled on first use and cached on disk)."""
    global _KERNEL
    with _KERNEL_LOCK:
        if _KERNEL is None:
            from training import _treeshap_kernel

            _KERNEL = _treeshap_kernel.explain_rows
    return _KERNEL


def explain(trees: FlatTrees, matrix: np.ndarray, parallel: bool = True) -> np.ndarray:
    """Contributions of every row of ``matrix`` (rows, features), in ``pred_contrib``'s
    layout for one output: one column per feature, then the expected value."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != trees.n_features:
        raise ValueError(f"expected a matrix with {trees.n_features} columns, got shape {matrix.shape}")
    out = np.zeros((len(matrix), trees.n_features + 1))
    if len(matrix):
        _kernel()(
            parallel and len(matrix) > BLOCK_ROWS,
            matrix, out, trees.tree_node_start, trees.tree_unit_start, trees.node_feature, trees.node_threshold,
            trees.node_kind, trees.node_nan_left, trees.node_zero_default, trees.node_default_left,
            trees.node_cat_start, trees.node_cat_end, trees.cat_left, trees.node_parent, trees.node_is_left,
            trees.node_slot, trees.node_new, trees.unit_node, trees.unit_slot_start, trees.slot_feature,
            trees.unit_table_start, trees.table, BLOCK_ROWS,
        )
    out[:, -1] = trees.expected
    return out


# ---------------------------------------------------------------- checked, with fallback


def pred_contrib(booster: Any, matrix: np.ndarray, class_index: int = 0, num_threads: int = 0) -> np.ndarray:
    """LightGBM's own contributions of one output: (rows, features + 1)."""
    raw = booster.predict(matrix, pred_contrib=True, num_iteration=booster.best_iteration or None,
                          num_threads=num_threads)
    width = matrix.shape[1] + 1
    return raw[:, class_index * width : (class_index + 1) * width] if raw.shape[1] > width else raw


def difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference over the largest absolute reference value (the rule of
    equality: within ``tolerance`` of the largest contribution)."""
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    gap = float(np.max(np.abs(ours - reference))) if reference.size else 0.0
    if not math.isfinite(gap):
        return math.inf
    return gap / scale if scale > 0 else (0.0 if gap == 0 else math.inf)


def edge_rows(trees: FlatTrees, n_rows: int, seed: int = 0) -> np.ndarray:
    """Made-up rows on the edges of every split: each value is, for its feature, one of a
    threshold itself, the next number above or below it, missing, zero, a category a split
    sends left, one no split knows, or a negative code. Where a rule of LightGBM's
    decisions was misread, some of these rows go the other way."""
    rng = np.random.default_rng(seed)
    candidates: list[list[float]] = [[math.nan, 0.0, -0.0] for _ in range(trees.n_features)]
    for k, feature in enumerate(trees.node_feature):
        if trees.node_kind[k] == CATEGORICAL:
            lookup = trees.cat_left[trees.node_cat_start[k] : trees.node_cat_end[k]]
            candidates[feature] += [float(c) for c in np.flatnonzero(lookup)] + [float(len(lookup)), -1.0, 0.5]
        else:
            t = float(trees.node_threshold[k])
            candidates[feature] += [t, float(np.nextafter(t, math.inf)), float(np.nextafter(t, -math.inf))]
    out = np.empty((n_rows, trees.n_features))
    for f, values in enumerate(candidates):
        out[:, f] = rng.choice(np.array(values), size=n_rows)
    return out


def with_missing(matrix: np.ndarray, share: float = 0.3, seed: int = 1) -> np.ndarray:
    """``matrix`` with about ``share`` of its values removed (NaN), the same cells each time."""
    holes = np.random.default_rng(seed).random(matrix.shape) < share
    return np.where(holes, np.nan, matrix)


class Explainer:
    """Contributions of one output of one booster: the tables of this module once they are
    checked equal to ``pred_contrib``, LightGBM's own ``pred_contrib`` otherwise.

    The check runs twice: when the explainer is made, on :func:`edge_rows`; and on the
    first rows it explains (a sample of them, as given and with values removed). A model
    the tables cannot read, or a difference beyond ``tolerance``, switches the explainer to
    ``pred_contrib`` for good; :attr:`method` and :attr:`reason` say which and why.
    """

    def __init__(self, booster: Any, class_index: int = 0, *, method: str = "tables",
                 tolerance: float = 1e-6, check_rows: int = 256) -> None:
        self.booster = booster
        self.class_index = class_index
        self.tolerance = tolerance
        self.check_rows = check_rows
        self.trees: FlatTrees | None = None
        self.method = "pred_contrib"
        self.reason: str | None = "pred_contrib asked for" if method == "pred_contrib" else None
        #: Largest relative difference seen in the checks so far.
        self.max_difference = 0.0
        self._checked_real = False
        self._lock = threading.Lock()
        if method == "tables":
            self._build()

    def _build(self) -> None:
        try:
            trees = flatten(self.booster, self.class_index, self.booster.best_iteration or None)
            self.trees = trees
            if self._agrees(edge_rows(trees, self.check_rows), "rows on the splits' edges"):
                self.method = "tables"
        except UnsupportedModel as err:
            self._fall_back(f"the tables cannot read this model: {err}")

    def _agrees(self, matrix: np.ndarray, what: str) -> bool:
        assert self.trees is not None
        ours = explain(self.trees, matrix, parallel=False)
        gap = difference(ours, pred_contrib(self.booster, matrix, self.class_index, num_threads=1))
        self.max_difference = max(self.max_difference, gap)
        if gap > self.tolerance:
            self._fall_back(f"differs from pred_contrib on {what} by {gap:.2e} of the largest "
                            f"contribution (tolerance {self.tolerance:.0e})")
            return False
        return True

    def _fall_back(self, reason: str) -> None:
        self.method, self.reason, self.trees = "pred_contrib", reason, None
        log.warning("explaining with LightGBM's pred_contrib: %s", reason)

    def contributions(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """(rows, features + 1): one column per feature, then the expected value.
        ``num_threads`` 0 uses every core, 1 one (as a serving worker)."""
        if self.method == "tables" and not self._checked_real and len(matrix):
            with self._lock:
                if not self._checked_real and self.method == "tables":
                    at = np.unique(np.linspace(0, len(matrix) - 1, min(self.check_rows, len(matrix))).astype(int))
                    sample = np.ascontiguousarray(matrix[at], dtype=np.float64)
                    if self._agrees(sample, "the first rows explained"):
                        self._agrees(with_missing(sample), "the first rows explained, with values removed")
                    self._checked_real = True
        trees = self.trees
        if self.method == "tables" and trees is not None:
            return explain(trees, matrix, parallel=num_threads != 1)
        return pred_contrib(self.booster, matrix, self.class_index, num_threads)


_EXPLAINERS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Explainer]] = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer(booster: Any, class_index: int = 0, *, method: str = "tables", tolerance: float = 1e-6,
              check_rows: int = 256) -> Explainer:
    """The explainer of one output of ``booster``, made (and checked) once per booster and
    settings, and kept beside the booster rather than in it (bundles pickle as before)."""
    key = (class_index, method, tolerance, check_rows)
    with _EXPLAINERS_LOCK:
        found = _EXPLAINERS.setdefault(booster, {}).get(key)
    if found is None:
        found = Explainer(booster, class_index, method=method, tolerance=tolerance, check_rows=check_rows)
        with _EXPLAINERS_LOCK:
            found = _EXPLAINERS[booster].setdefault(key, found)
    return found
