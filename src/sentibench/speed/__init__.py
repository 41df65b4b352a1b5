"""``sentibench speedtest`` and ``sentibench bench --dry-run``: how fast this machine runs the
reference's models through sentibench's own engine, and what a bench would therefore cost.

* :mod:`.args`: the options (light: the command line imports it);
* :mod:`.models`: random-weight models at the real sizes, from configurations shipped in
  ``configs/`` (nothing is downloaded), and their FLOPs per token;
* :mod:`.peaks`: the device's peak TFLOP/s (known GPUs by name, a measured CPU matmul);
* :mod:`.measure` and :mod:`.checks`: timed training and evaluation through
  :class:`~sentibench.engine.training.Engine`, and the correctness checks;
* :mod:`.run` and :mod:`.report`: the command itself, its table and files, and the figures
  saved per device;
* :mod:`.estimate`: the bench plan with an estimated time per row.
"""
