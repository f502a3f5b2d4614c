"""Reward-model training; the public entry point is :mod:`rmcore.train`."""
