"""Benchmarks and the load test: run from the source checkout (`make benchmark`, `make benchmark-search`,
`make load-test`), never installed with the package. Each prints its figures side by side in one run."""
