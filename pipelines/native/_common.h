/*
 * What both compiled loops share (_fastrows.c and _fastkafka.c): a growable byte buffer with the
 * numbers they write into it, and appending a new object to a list. The includer has included
 * Python.h.
 */
#ifndef PIPELINES_COMMON_H
#define PIPELINES_COMMON_H

#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* A growable byte buffer (PyMem); {NULL, 0, 0} is an empty one. */
typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

/* Room for `more` bytes after b->len: 0, or -1 with a MemoryError. */
static inline int grow(Buffer *b, size_t more) {
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* n bytes of s appended: 0, or -1 with a MemoryError. */
static inline int add(Buffer *b, const char *s, size_t n) {
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* n in decimal appended: 0, or -1 with an error. */
static inline int add_long(Buffer *b, long long n) {
    char text[24];
    int len = snprintf(text, sizeof text, "%lld", n);
    return add(b, text, (size_t)len);
}

/* repr(v) of a finite float appended ("0.5", "3.0", "1e-07"): 0, or -1 with an error. */
static inline int add_repr(Buffer *b, double v) {
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text)
        return -1;
    int rc = add(b, text, strlen(text));
    PyMem_Free(text);
    return rc;
}

/* list.append(item) of a new reference, released here (item NULL: the error of making it): 0, or -1 with an error. */
static inline int append_new(PyObject *list, PyObject *item) {
    int rc = item ? PyList_Append(list, item) : -1;
    Py_XDECREF(item);
    return rc;
}

/* Avro's binary encoding of a long (and an int, a union branch, a length): zigzag, then a
 * little-endian base-128 varint. Appended: 0, or -1 with a MemoryError. */
static inline int add_avro_long(Buffer *b, long long n) {
    if (grow(b, 10) < 0)
        return -1;
    unsigned long long z = ((unsigned long long)n << 1) ^ (unsigned long long)(n >> 63);
    char *p = b->data + b->len;
    while (z >= 0x80) {
        *p++ = (char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *p++ = (char)z;
    b->len = (size_t)(p - b->data);
    return 0;
}

/* Avro's binary encoding of a long read from s[*pos:n] (*pos moved past it): 1, or 0 when it is
 * cut short or longer than 10 bytes. */
static inline int read_avro_long(const unsigned char *s, size_t n, size_t *pos, long long *out) {
    unsigned long long z = 0;
    for (int shift = 0; shift < 70 && *pos < n; shift += 7) {
        unsigned char c = s[(*pos)++];
        z |= (unsigned long long)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = (long long)(z >> 1) ^ -(long long)(z & 1);
            return 1;
        }
    }
    return 0;
}

/* n bytes of an IEEE 754 number appended little-endian, as Avro writes doubles and floats: 0, or -1. */
static inline int add_little_endian(Buffer *b, const void *number, int n) {
    unsigned char bytes[8];
    memcpy(bytes, number, (size_t)n);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int i = 0; i < n / 2; i++) {
        unsigned char t = bytes[i];
        bytes[i] = bytes[n - 1 - i];
        bytes[n - 1 - i] = t;
    }
#endif
    return add(b, (const char *)bytes, (size_t)n);
}

/* An Avro double (8 bytes) appended: 0, or -1 with a MemoryError. */
static inline int add_avro_double(Buffer *b, double v) {
    return add_little_endian(b, &v, 8);
}

/* An Avro float (4 bytes) appended: 0, or -1 with a MemoryError. */
static inline int add_avro_float(Buffer *b, float v) {
    return add_little_endian(b, &v, 4);
}

/* Days from 1970-01-01 to year-month-day (proleptic Gregorian). */
static inline long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

#endif
