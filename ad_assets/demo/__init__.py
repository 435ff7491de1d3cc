"""Built-in sample ads, generated locally, for the demo, the tests and the benches."""
