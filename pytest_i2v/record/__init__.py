"""The results record: one typed ``GenerationRecord`` per measured test, the results document
that holds them (schema-versioned, older versions still read) and the one judgement of a record
against its baseline."""
