"""tests/bench holds the `make bench` benchmark (run as a script), not tests: pytest collects nothing here."""
collect_ignore_glob = ["*.py"]
