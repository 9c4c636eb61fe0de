"""Background work of a server process: change listening, batched bookkeeping writes."""
