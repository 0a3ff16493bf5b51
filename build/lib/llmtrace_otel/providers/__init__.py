"""API shapes: request/response/stream parsing into typed values."""
