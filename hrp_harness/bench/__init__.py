"""Benchmarks, each on throwaway clusters it creates."""
