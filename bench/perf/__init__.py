"""`make perf`: the speed of every variant against plain nn.LSTM."""
