"""Avro for the engine: schemas and the conversions between rows and Avro records.

    schemas.py   Avro record schema <-> our Schema (columns_from_avro, avro_from_columns), avsc loading
    kinds.py     what fastavro gives for a field's Avro type (its kind), the table the others build on
    reading.py   Avro records -> rows (RowConverter)
    writing.py   rows -> Avro records (record_converter)
    values.py    JSON text of Avro values (json_text), base64 text of bytes
    codecs.py    the zstandard codec for fastavro (ensure_zstandard_codec)

fastavro is imported inside functions only: the CLI imports nothing of it. This file imports
nothing: import from the module that holds the name.
"""
