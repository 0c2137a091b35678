"""`pipelines guess`: a complete config from a seed (`in` and `out`) and a bounded sample of its input.

seed      the seed config, rendered as `validate` renders it; its input plugin lists and opens objects
sample    the first bytes of the first object, decompressed (gzip or zstd, known by the magic bytes)
charset   UTF-8 (with or without a byte order mark), CP932 (Shift_JIS) or EUC-JP, by charset-normalizer
layout    CSV or TSV (delimiter, quote) or JSON lines, read into records
columns   names, header or not, and the key column of a Kafka output
values    a column's type: the narrowest one the engine's own converters read every sampled value as
writer    the config's text: the seed's own text with the guessed blocks spliced in, with comments
guesser   the whole: seed, sample, guess, text, validated as `validate` validates it

Nothing here is imported when the CLI starts: `pipelines guess` imports it when it runs.
"""
