"""Local development stack: a single-node Kafka broker (KRaft) and a moto AWS emulator."""
