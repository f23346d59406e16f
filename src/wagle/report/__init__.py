"""Reports of experiments, from saved results alone: results.json, a table, figures, report.md."""

from wagle.report.write import Report, write_report

__all__ = ["Report", "write_report"]
