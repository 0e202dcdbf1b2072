"""Smart Home cloud-to-cloud backend: Cloud Functions for Google Home."""
