"""Pure, loop-free conversions between what sources deliver and what sinks need."""
