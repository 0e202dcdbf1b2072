"""Adapters: Firestore, Pub/Sub and HomeGraph behind the domain's small interfaces, plus in-memory fakes."""
