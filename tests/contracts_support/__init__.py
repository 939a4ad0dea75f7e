"""Helpers for the contract-suite tests: deliberately drifted variants of the mock."""
