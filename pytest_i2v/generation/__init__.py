"""What a test asks for and what it gets back: the ``i2v`` mark and budgets as typed functions
(``marks``: ``GenerationSpec``, ``Budget``), memory options that cannot apply to a pipeline, the
conditioning image, and the record of one measured generation with the results document
(``results``: ``GenerationRecord``).

Pure: no torch, no pytest. Read by every layer above; it imports only ``pipelines``/``models``
(which in turn read the specs) and the foundations (``errors``, ``storage``)."""
