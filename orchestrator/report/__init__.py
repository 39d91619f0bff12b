"""Reports: the terminal tables (``table``), tidy data (``data``), statistics (``stats``) and the
HTML report (``build`` and ``sections``)."""

from orchestrator.report.table import STATES, GridStatus, auc_table, grid_status

__all__ = ["STATES", "GridStatus", "auc_table", "grid_status"]
