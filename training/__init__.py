"""Radar training: labels, models, baselines, evaluation, MLflow registry."""
