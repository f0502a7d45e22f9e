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
    """The trees of one output (class) of a booster as flat arrays, with the leaf tables."""

    n_features: int
    #: Per tree: start of its internal nodes and of its leaves (length trees + 1).
    tree_node_start: np.ndarray
    tree_leaf_start: np.ndarray
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
    cat_left: np.ndarray
    #: Per leaf: its path (nodes, whether the path goes left there, the node's feature slot),
    #: its distinct features (slots) and the offset of its table.
    leaf_path_start: np.ndarray
    path_node: np.ndarray
    path_left: np.ndarray
    path_slot: np.ndarray
    leaf_slot_start: np.ndarray
    slot_feature: np.ndarray
    leaf_table_start: np.ndarray
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


class _Builder:
    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.tree_node_start, self.tree_leaf_start = [0], [0]
        self.nodes: list[tuple[int, float, int, bool, bool, bool, int, int]] = []
        self.cat_left: list[bool] = []
        self.leaf_path_start, self.path = [0], []  # type: ignore[var-annotated]
        self.leaf_slot_start, self.slot_feature = [0], []  # type: ignore[var-annotated]
        self.leaf_table_start, self.tables = [0], []  # type: ignore[var-annotated]
        self.expected = 0.0

    def add(self, info: dict[str, Any]) -> None:
        root = info["tree_structure"]
        node_base = len(self.nodes)
        if "split_index" not in root:
            # A one-leaf tree moves every row alike: it only adds to the expected value.
            self.expected += float(root["leaf_value"])
            self.tree_node_start.append(len(self.nodes))
            self.tree_leaf_start.append(self.tree_leaf_start[-1])
            return
        internal: list[dict[str, Any]] = []
        leaves: list[tuple[dict[str, Any], list[tuple[dict[str, Any], bool]]]] = []
        stack: list[tuple[dict[str, Any], list[tuple[dict[str, Any], bool]]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if "split_index" in node:
                internal.append(node)
                stack.append((node["right_child"], path + [(node, False)]))
                stack.append((node["left_child"], path + [(node, True)]))
            else:
                leaves.append((node, path))
        internal.sort(key=lambda n: n["split_index"])
        for node in internal:
            self.nodes.append(self._node(node))
        root_count = float(root["internal_count"])
        for leaf, path in leaves:
            self._leaf(leaf, path, node_base, root_count)
        self.tree_node_start.append(len(self.nodes))
        self.tree_leaf_start.append(len(self.leaf_path_start) - 1)

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

    def _leaf(self, leaf: dict[str, Any], path: list[tuple[dict[str, Any], bool]], node_base: int,
              root_count: float) -> None:
        if "leaf_coeff" in leaf:
            raise UnsupportedModel("linear trees (a linear model in each leaf)")
        slots: list[int] = []
        shares: list[float] = []
        counts = [float(n["internal_count"]) for n, _ in path] + [float(leaf["leaf_count"])]
        for k, (node, left) in enumerate(path):
            feature = int(node["split_feature"])
            if feature not in slots:
                slots.append(feature)
                shares.append(1.0)
            slot = slots.index(feature)
            parent = counts[k]
            # An empty parent (never in LightGBM's own trees) would make the share undefined.
            if parent <= 0:
                raise UnsupportedModel("a split with no training rows")
            shares[slot] *= counts[k + 1] / parent
            self.path.append((node_base + int(node["split_index"]), left, slot))
        value = float(leaf["leaf_value"])
        if len(slots) > 20:
            raise UnsupportedModel(f"a path with {len(slots)} distinct features")
        self.tables.append(leaf_table(value, np.array(shares, dtype=np.float64)))
        self.expected += value * float(leaf["leaf_count"]) / root_count
        self.slot_feature.extend(slots)
        self.leaf_path_start.append(len(self.path))
        self.leaf_slot_start.append(len(self.slot_feature))
        self.leaf_table_start.append(self.leaf_table_start[-1] + self.tables[-1].size)

    def finish(self) -> FlatTrees:
        nodes = self.nodes
        path = self.path
        return FlatTrees(
            n_features=self.n_features,
            tree_node_start=np.array(self.tree_node_start, dtype=np.int64),
            tree_leaf_start=np.array(self.tree_leaf_start, dtype=np.int64),
            node_feature=np.array([n[0] for n in nodes], dtype=np.int64),
            node_threshold=np.array([n[1] for n in nodes], dtype=np.float64),
            node_kind=np.array([n[2] for n in nodes], dtype=np.int8),
            node_nan_left=np.array([n[3] for n in nodes], dtype=np.bool_),
            node_zero_default=np.array([n[4] for n in nodes], dtype=np.bool_),
            node_default_left=np.array([n[5] for n in nodes], dtype=np.bool_),
            node_cat_start=np.array([n[6] for n in nodes], dtype=np.int64),
            node_cat_end=np.array([n[7] for n in nodes], dtype=np.int64),
            cat_left=np.array(self.cat_left, dtype=np.bool_),
            leaf_path_start=np.array(self.leaf_path_start, dtype=np.int64),
            path_node=np.array([p[0] for p in path], dtype=np.int64),
            path_left=np.array([p[1] for p in path], dtype=np.bool_),
            path_slot=np.array([p[2] for p in path], dtype=np.int64),
            leaf_slot_start=np.array(self.leaf_slot_start, dtype=np.int64),
            slot_feature=np.array(self.slot_feature, dtype=np.int64),
            leaf_table_start=np.array(self.leaf_table_start, dtype=np.int64),
            table=np.concatenate(self.tables) if self.tables else np.zeros(0),
            expected=self.expected,
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
            matrix, out, trees.tree_node_start, trees.tree_leaf_start, trees.node_feature, trees.node_threshold,
            trees.node_kind, trees.node_nan_left, trees.node_zero_default, trees.node_default_left,
            trees.node_cat_start, trees.node_cat_end, trees.cat_left, trees.leaf_path_start, trees.path_node,
            trees.path_left, trees.path_slot, trees.leaf_slot_start, trees.slot_feature, trees.leaf_table_start,
            trees.table, BLOCK_ROWS,
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
