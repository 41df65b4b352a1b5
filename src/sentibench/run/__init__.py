"""The one-run layer: a run directory, its results.json and predictions, and running,
resuming or scoring one neural or scikit-learn run end to end."""
