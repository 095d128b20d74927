"""Benchmarks against a plain reference in the same run: `labelup bench prepare | teacher | student`."""
