"""Isolation of untrusted code: namespaces, Landlock, bubblewrap; limits."""
