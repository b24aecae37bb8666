"""The decision: from measurements and their history to a verdict per test, and text that says why.

``judgement`` (one test against its baseline: the one path to the decision's inputs), ``gate``
(the regression rule), ``outcome`` (what a test comes to, decided once), ``budget`` (the declared
budgets), ``explain``,
``peak`` (the one memory figure of a test), ``signature`` (the work a generation does),
``fingerprint`` (the environment's keys), ``conditions`` (clocks and throttling per repeat),
``machine_speed`` (a slower machine or slower code), ``baseline_store`` (the per-GPU YAML) and
``ab_calibration`` (A/B noise stored with the baselines).

Pure: no torch, no pytest, so the review CLI, A/B and the report decide exactly as the plugin
does. It imports only the specs (``generation``) and the foundations; everything else may import
it."""
