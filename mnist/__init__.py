"""MNIST experiments of reports 000, 001 and 004."""
