"""``sentibench bench``: presets, the plan of a comparison, ``--set`` overrides, its time
estimate and running every row."""
