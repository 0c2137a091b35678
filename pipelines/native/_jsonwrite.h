/*
 * JSON text of one value, as orjson writes it, appended to a Buffer: what the compiled loops write
 * for a row's JSON object (_fastkafka.c's produce_json, _fastrows.c's json_lines). The includer has
 * included Python.h, datetime.h (with PyDateTime_IMPORT done), math.h, _common.h and _isoformat.h.
 */
#ifndef PIPELINES_JSONWRITE_H
#define PIPELINES_JSONWRITE_H

static const char JSON_HEX[] = "0123456789abcdef";

/* A str's UTF-8 as a JSON string, escaped as orjson escapes it: 0, or -1 with an error. */
static inline int json_string(Buffer *b, const char *s, Py_ssize_t n) {
    /* worst case: every byte a \u00XX escape */
    if (grow(b, (size_t)n * 6 + 2) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        default:
            *out++ = 'u'; *out++ = '0'; *out++ = '0';
            *out++ = JSON_HEX[c >> 4]; *out++ = JSON_HEX[c & 15];
        }
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    return 0;
}

/* repr's "[-]d[.ddd]e-05" at b->data[start:] written as orjson writes numbers from 1e-5 to 1e-4:
 * "[-]0.0000dddd". 0, or -1 with an error. */
static inline int json_float_e5(Buffer *b, size_t start, const char *e) {
    char digits[32];
    size_t n = 0;
    int negative = b->data[start] == '-';
    for (const char *p = b->data + start + negative; p < e && n < sizeof digits; p++)
        if (*p != '.')
            digits[n++] = *p;
    b->len = start;
    return negative && add(b, "-", 1) < 0 ? -1 : (add(b, "0.0000", 6) < 0 || add(b, digits, n) < 0 ? -1 : 0);
}

/* A float as orjson writes it: null when not finite, else repr with the exponent's leading zero
 * dropped (Python writes 1e-07, orjson 1e-7), and without an exponent from 1e-5 up (Python writes
 * 2.5e-05, orjson 0.000025). 0, or -1 with an error. */
static inline int json_float(Buffer *b, double v) {
    if (!isfinite(v))
        return add(b, "null", 4);
    size_t start = b->len;
    if (add_repr(b, v) < 0)
        return -1;
    char *end = b->data + b->len, *e = memchr(b->data + start, 'e', b->len - start);
    if (e && end - e == 4 && memcmp(e, "e-05", 4) == 0)
        return json_float_e5(b, start, e);
    if (e && end - e > 3 && (e[1] == '-' || e[1] == '+') && e[2] == '0') {
        memmove(e + 2, e + 3, (size_t)(end - (e + 3)));
        b->len--;
    }
    return 0;
}

/* 1 written, 0 not one this writes (a time zone other than UTC), -1 error */
static inline int json_datetime(Buffer *b, PyObject *v) {
    char text[ISOFORMAT_MAX + 2];
    size_t n = isoformat(text + 1, v);
    if (!n)
        return 0;
    text[0] = '"';
    text[n + 1] = '"';
    return add(b, text, n + 2) < 0 ? -1 : 1;
}

static inline int json_other(Buffer *b, PyObject *v, PyObject *fallback) {
    PyObject *text = PyObject_CallOneArg(fallback, v);
    if (!text)
        return -1;
    if (!PyBytes_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "the fallback serializer must return bytes");
        return -1;
    }
    int rc = add(b, PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text));
    Py_DECREF(text);
    return rc;
}

/* One value's JSON as orjson writes it (fallback(v) -> bytes for what this does not write): 0, or -1 with an error. */
static inline int json_value(Buffer *b, PyObject *v, PyObject *fallback) {
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        return s ? json_string(b, s, n) : -1;
    }
    if (v == Py_None)
        return add(b, "null", 4);
    if (v == Py_True)
        return add(b, "true", 4);
    if (v == Py_False)
        return add(b, "false", 5);
    if (PyFloat_CheckExact(v))
        return json_float(b, PyFloat_AS_DOUBLE(v));
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        return overflow ? json_other(b, v, fallback) : add_long(b, n);
    }
    if (PyDateTime_CheckExact(v)) {
        int done = json_datetime(b, v);
        if (done)
            return done < 0 ? -1 : 0;
    }
    return json_other(b, v, fallback);
}

#endif
