"""The tap's streams: directory objects (directory.py) and usage reports (reports.py)."""
