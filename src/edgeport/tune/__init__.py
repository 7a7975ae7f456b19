"""`edgeport tune`: automated compression under a budget, chosen on a selection set, graded on a report set."""
