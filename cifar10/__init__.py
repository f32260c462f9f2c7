"""CIFAR-10 experiments of reports 000, 001, 003 and 004."""
