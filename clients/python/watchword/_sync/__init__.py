"""The blocking client, generated from the asyncio one (tools/unasync_client.py)."""
