"""The study's conclusions as code: latency classes (``latency``), the dynamic-resolution rule
(``resolution``), whether a budget fits a profile (``budgets``), the study file (``study_file``),
and a recommendation matrix computed from measurements, never written by hand (``cost_model``,
``recommendation``); ``reference`` compares with the article's published figures."""

from pytest_i2v.study.budgets import fits_profile
from pytest_i2v.study.latency import latency_class, parse_thresholds
from pytest_i2v.study.recommendation import (
    format_recommendation,
    recommend,
    recommend_per_pipeline,
)
from pytest_i2v.study.resolution import pick_resolution
from pytest_i2v.study.study_file import Study

__all__ = [
    "Study",
    "fits_profile",
    "format_recommendation",
    "latency_class",
    "parse_thresholds",
    "pick_resolution",
    "recommend",
    "recommend_per_pipeline",
]
