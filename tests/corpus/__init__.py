"""The real-program corpus (issue 15): workloads.py lists the workloads, runner.py runs and
compares them, run.py is `make corpus`; tests/test_corpus.py runs them in the suite."""
