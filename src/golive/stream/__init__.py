"""The broadcast: the one thing every stage talks to (stream).

The hub checks stream keys, admits one publisher per stream, runs the reconnect
window and fans the active input out to its sinks; live ingest facts are measured
here.
"""
