"""Command-line work around the suite: the benchmark (bench, bench_series) and the device parity
check (parity). The top layer: nothing in mechcheck imports it but __main__."""
