"""The model code MLflow logs for every Radar model (see :data:`training.pyfunc.MODEL_CODE`)."""

from mlflow.models import set_model

from training.pyfunc import RadarPyfunc

set_model(RadarPyfunc())
