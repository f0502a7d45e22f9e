"""A TargetBundle as an MLflow pyfunc model.

The bundle is written with joblib as the model's ``bundle`` artifact rather than held in
the pickled PythonModel: the pickled wrapper stays a few bytes, and the bundle file can be
read back (and its size seen) without going through pyfunc. Loading needs the ``radar``
package importable, because the bundle refers to Radar's model classes by module path.

The wrapper is logged as code (:data:`MODEL_CODE`, MLflow's "models from code"), not as a
pickled object: what MLflow stores is a short file naming :class:`RadarPyfunc`, so loading
a model runs Radar's installed code rather than unpickling a Python object.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

from features.atomic import atomic_path
from training.bundle import TargetBundle

BUNDLE_ARTIFACT = "bundle"
BUNDLE_FILE = "bundle.joblib"
#: The file MLflow logs as the model's code (it calls ``set_model(RadarPyfunc())``).
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")

#: Distributions a loaded bundle needs. Pinned from this environment so MLflow does not
#: have to infer them, which would load the model in a subprocess for every log_model.
_RUNTIME_DISTRIBUTIONS = ("lightgbm", "scikit-learn", "scikit-survival", "pymc-marketing", "pandas", "numpy", "joblib")


class RadarPyfunc(mlflow.pyfunc.PythonModel):
    """Scores rows of features with the bundle stored next to it."""

    def load_context(self, context: Any) -> None:
        self.bundle: TargetBundle = joblib.load(context.artifacts[BUNDLE_ARTIFACT])

    # A DataFrame hint is one MLflow 3 neither derives a schema from nor checks input
    # against: the signature logged with the model stays the one contract.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Model-level outputs of the bundle for a frame of features (see TargetBundle)."""
        return self.bundle.predict(model_input)


def save_bundle(bundle: TargetBundle, folder: Path) -> Path:
    """Write the bundle for ``artifacts={"bundle": path}``; returns the path."""
    path = Path(folder) / BUNDLE_FILE
    # Renamed into place once complete: a killed writer leaves no half-written model.
    with atomic_path(path) as temp:
        joblib.dump(bundle, temp, compress=3)
    return path


def pip_requirements() -> list[str]:
    """The installed versions of what unpickling and scoring a bundle imports."""
    return [f"{name}=={metadata.version(name)}" for name in _RUNTIME_DISTRIBUTIONS]


def to_pyfunc_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Features as MLflow's schema enforcement accepts them: categorical columns as plain
    strings (MLflow refuses to convert pandas ``category``; the bundle re-encodes them
    against its training categories), index kept."""
    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.astype({c: object for c in cats})


def _signature_example(example: pd.DataFrame) -> pd.DataFrame:
    """Integer columns declared as doubles: a count with a missing value arrives as a float,
    and an integer schema would then reject it at scoring time."""
    out = to_pyfunc_input(example.reset_index(drop=True))
    ints = [c for c in out.columns if pd.api.types.is_integer_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c])]
    return out.astype({c: "float64" for c in ints})


def bundle_signature(bundle: TargetBundle, input_example: pd.DataFrame) -> ModelSignature:
    """Inputs from the example (every column optional: the bundle fills missing features
    with NaN, as LightGBM expects), outputs from the bundle's own predictions."""
    example = _signature_example(input_example)
    inferred = infer_signature(example, bundle.predict(input_example).reset_index(drop=True))
    optional = Schema([ColSpec(col.type, col.name, required=False) for col in inferred.inputs.inputs])
    return ModelSignature(inputs=optional, outputs=inferred.outputs)


def unwrap_bundle(model: mlflow.pyfunc.PyFuncModel) -> TargetBundle:
    """The TargetBundle inside a loaded pyfunc model."""
    wrapper = model.unwrap_python_model()
    if not isinstance(wrapper, RadarPyfunc):
        raise TypeError(f"not a Radar model: {type(wrapper).__name__}")
    return wrapper.bundle
