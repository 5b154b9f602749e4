//! Test fixtures (mock API server) — filled in below.
