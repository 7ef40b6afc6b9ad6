"""Multi-process scenarios against real loopback brokers and real instances."""
