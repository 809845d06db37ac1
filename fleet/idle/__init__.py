"""Idle workers stop themselves: the idle rule, its warning and the auto-pause that follows."""
