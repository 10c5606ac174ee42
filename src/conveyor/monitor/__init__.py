"""Monitoring: counters in shared memory and the statistics read from them."""
