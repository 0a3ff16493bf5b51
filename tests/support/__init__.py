"""Real in-process servers used by the tests: fake upstream, OTLP sink."""
