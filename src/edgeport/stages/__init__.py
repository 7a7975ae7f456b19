"""The stages of the flow, each reading the previous stage's output from the run folder."""
