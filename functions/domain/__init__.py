"""The protocol domain: devices, traits, intents. Imports neither Flask nor any Google SDK."""
