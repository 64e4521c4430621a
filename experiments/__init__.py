"""Research beside the product: sweeps of training configurations and their results.

Not installed with the package: ``python -m experiments`` from the repository's root (sweeps.py
says what each command does). The results file, experiments.jsonl, is the record the docs'
model tables are made from.
"""
