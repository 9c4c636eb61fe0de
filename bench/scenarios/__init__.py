"""The scenarios of issue 8 (B1 to B7 and workers), one module per kind of question."""
