/*
 * What both compiled loops share (_fastrows.c and _fastkafka.c): a growable byte buffer with the
 * numbers they write into it, and appending a new object to a list. The includer has included
 * Python.h.
 */
#ifndef PIPELINES_COMMON_H
#define PIPELINES_COMMON_H

#include <stdio.h>
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

#endif
