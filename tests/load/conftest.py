"""tests/load is run by `make load` (python tests/load/load_test.py), not by pytest: the load test
takes minutes and measures, it does not assert in a test function."""
collect_ignore = ["load_test.py", "main.py", "dispatch_main.py"]
