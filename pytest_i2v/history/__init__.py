"""The history over commits: every run kept in a database (``store``), one test's metric as a
series (``series``), the points where its level moved (``changes``)."""
