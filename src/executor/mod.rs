//! Carrying out a plan: bounded parallelism, confirmation gates, retries.
