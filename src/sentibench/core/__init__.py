"""The small core every layer may use: errors, declared options, atomic file writes,
progress bars, process runtime settings and the few metrics the data layer needs.

Nothing here imports another sentibench layer."""
