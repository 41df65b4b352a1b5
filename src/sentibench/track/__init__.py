"""Sending finished runs to the experiment trackers teams already run (TensorBoard, MLflow).

Opt-in only (``--report-to``): nothing here runs, imports a tracker or touches the network
unless asked. A tracker that fails is one warning line, never a failed or slowed run.
"""
