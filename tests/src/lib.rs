//! Harness for end-to-end tests: starts real `spate` processes on free ports.
