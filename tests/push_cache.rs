//! Integration tests for push-cache (real Nix).
