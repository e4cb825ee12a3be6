"""VexFS core library: on-disk structures beyond the layout mirror (the jbd2 journal)."""
