"""Evaluation: QA metrics, membership inference, multiple choice, text-corpus metrics."""
