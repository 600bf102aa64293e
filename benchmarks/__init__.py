"""quietmic's benchmarks: they print figures; the tests only check behaviour."""
