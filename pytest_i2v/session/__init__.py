"""The pytest side at work: what runs between pytest's hooks once an i2v test is collected.

``plugin.py`` stays thin and hands over to ``runtime`` (the session object kept in the config's
stash). Here: the settings (CLI + ini -> one frozen ``Settings``), the run's plan (profile,
device, dtype), the pipeline cache, one measured generation -> one record (``recording``), the
gate around each test (``gate_loop``, ``fresh_process``), the session's outputs, the progress
line and the bridge to pytest-benchmark.

Imported by ``plugin`` and ``simulated_plugin`` only. It may import everything below it (the
verdict, measurement, the report, the study); nothing below imports it (``.importlinter``)."""
