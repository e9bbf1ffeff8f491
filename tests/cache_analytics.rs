//! Integration tests for cache-analytics (real Nix).
