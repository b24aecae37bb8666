"""What a test asks for and what it gets back: the ``i2v`` mark and budgets as typed functions
(``marks``: ``GenerationSpec``, ``Budget``), the memory options a mark may name and those that
cannot apply to a pipeline (``memory_options``), the conditioning image (``inputs``), and the
record of one measured generation with the results document (``results``: ``GenerationRecord``).

Pure: no torch, no pytest. Read by every layer above; it imports only the pure parts of
``pipelines`` (the registry and the constraints; the adapters in turn read the specs) and the
foundations (``errors``, ``storage``)."""
