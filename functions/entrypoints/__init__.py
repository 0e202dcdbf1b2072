"""Thin Cloud Function modules: each turns its transport into calls on the domain and maps results back."""
