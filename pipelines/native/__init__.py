"""The compiled hot loops (setup.py builds _fastrows.c and _fastkafka.c; both optional) and the one
fused CSV-to-Kafka path (fused.py). compiled.py is how the rest of the package gets a compiled
function, or None for its Python loop; kafka.py drives the Kafka loops."""
