"""Framework-free psychometrics: instruments, reliable change, sudden gains, ruptures, trajectories.

Nothing in this package imports Django or any other part of :mod:`bordin.web`.
"""
