"""Usage report streams: definitions.py (the table of reports), stream.py (CSV files to
records), fetcher.py (pacing, spooling and downloads through the transport)."""
