/*
 * The CSV parser's hot loop in C: decoded text becomes typed rows, with no Python call per row
 * or per character (pipelines/plugins/csv_parser.py keeps the csv-module loop, with the same
 * results, for when this is not built).
 *
 * It reads what audiences are made of: unquoted fields, and quoted fields with doubled quotes and
 * line breaks inside. Any record out of the ordinary (a stray quote or carriage return, a
 * character after a closing quote, a record the text ends inside) is handed back, and the Python
 * side reads that one record with the csv module and reports it exactly as before. Records with
 * the wrong number of fields and values that do not convert are handed back too, for the error
 * output.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>

#include "_isoformat.h"

enum { KIND_STRING = 0, KIND_LONG = 1, KIND_DOUBLE = 2, KIND_MAPPING = 3, KIND_CALL = 4 };
enum { DONE_FULL = 0, DONE_END = 1, DONE_SLOW = 2, DONE_WIDTH = 3, DONE_VALUE = 4 };

/* 1 converted, 0 does not convert (a ValueError, TypeError, OverflowError or KeyError, cleared), -1 other error */
static int convert(int kind, PyObject *how, PyObject *text, PyObject **out) {
    PyObject *value = NULL;
    switch (kind) {
    case KIND_LONG: {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(text, &n);
        if (!s)
            return -1;
        Py_ssize_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
        if (n > i && n - i <= 18) {
            long long v = 0;
            Py_ssize_t j = i;
            for (; j < n && s[j] >= '0' && s[j] <= '9'; j++)
                v = v * 10 + (s[j] - '0');
            if (j == n) {
                *out = PyLong_FromLongLong(s[0] == '-' ? -v : v);
                return *out ? 1 : -1;
            }
        }
        value = PyObject_CallOneArg(how, text); /* spaces, underscores, big numbers: the Python rules */
        break;
    }
    case KIND_DOUBLE:
        value = PyFloat_FromString(text);
        if (value && !isfinite(PyFloat_AS_DOUBLE(value))) {
            Py_DECREF(value);
            return 0;
        }
        break;
    case KIND_MAPPING:
        value = PyObject_GetItem(how, text);
        break;
    default:
        value = PyObject_CallOneArg(how, text);
    }
    if (value) {
        *out = value;
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

typedef struct {
    Py_ssize_t ncols;
    int *kinds;
    PyObject *hows, *null;
    int typed, extra_ok, optional_ok;
} Columns;

/* The record's fields checked and typed in place: 1 ready, -1 error, or DONE_WIDTH / DONE_VALUE
 * with *payload set (the fields; (column index, the field)). Steals nothing. */
static int type_record(const Columns *c, PyObject *fields, PyObject **payload) {
    Py_ssize_t width = PyList_GET_SIZE(fields), ncols = c->ncols;
    if (width != ncols) {
        if (width > ncols && c->extra_ok) {
            if (PyList_SetSlice(fields, ncols, width, NULL) < 0)
                return -1;
        } else if (width < ncols && c->optional_ok) {
            for (Py_ssize_t i = width; i < ncols; i++)
                if (PyList_Append(fields, Py_None) < 0)
                    return -1;
        } else {
            *payload = Py_NewRef(fields);
            return DONE_WIDTH;
        }
    }
    for (Py_ssize_t i = 0; i < ncols; i++) {
        PyObject *text = PyList_GET_ITEM(fields, i);
        if (text == Py_None)
            continue;
        if (c->null != Py_None && PyUnicode_Compare(text, c->null) == 0) {
            PyList_SetItem(fields, i, Py_NewRef(Py_None));
            continue;
        }
        if (!c->typed || c->kinds[i] == KIND_STRING)
            continue;
        if (PyUnicode_GET_LENGTH(text) == 0) {
            PyList_SetItem(fields, i, Py_NewRef(Py_None));
            continue;
        }
        PyObject *value;
        int ok = convert(c->kinds[i], PyTuple_GET_ITEM(c->hows, i), text, &value);
        if (ok < 0)
            return -1;
        if (ok == 0) {
            *payload = Py_BuildValue("(nO)", i, text);
            return *payload ? DONE_VALUE : -1;
        }
        PyList_SetItem(fields, i, value);
    }
    return 1;
}

/* kinds (a tuple of ints) into out[ncols]; *typed: whether any is not KIND_STRING. 0 ok, -1 error. */
static int read_kinds(PyObject *kinds_obj, int *out, Py_ssize_t ncols, int *typed) {
    *typed = 0;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        out[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
        *typed |= out[i] != KIND_STRING;
    }
    return 0;
}

/* A quoted field's text between pos (after the opening quote) and the closing quote, doubled
 * quotes made single. */
static PyObject *unquote(PyObject *text, int kind, const void *data, Py_ssize_t a, Py_ssize_t b, Py_UCS4 quote, int doubled) {
    if (!doubled)
        return PyUnicode_Substring(text, a, b);
    PyObject *parts = PyList_New(0), *piece = NULL, *joined = NULL, *empty = NULL;
    if (!parts)
        return NULL;
    Py_ssize_t from = a;
    for (Py_ssize_t i = a; i < b; i++) {
        if (PyUnicode_READ(kind, data, i) == quote) { /* the first of a doubled pair: keep the second */
            piece = PyUnicode_Substring(text, from, i + 1);
            if (!piece || PyList_Append(parts, piece) < 0)
                goto done;
            Py_CLEAR(piece);
            i++;
            from = i + 1;
        }
    }
    piece = PyUnicode_Substring(text, from, b);
    if (!piece || PyList_Append(parts, piece) < 0)
        goto done;
    empty = PyUnicode_New(0, 0);
    if (empty)
        joined = PyUnicode_Join(empty, parts);
done:
    Py_XDECREF(piece);
    Py_XDECREF(empty);
    Py_DECREF(parts);
    return joined;
}

/*
 * split_rows(text, pos, final, rows, line_nos, limit, line, kinds, hows, null, extra_ok,
 *            optional_ok, delimiter, quote) -> (done, pos, line, start, payload)
 *
 * Reads records from text[pos:] (which starts at a record) into `rows`, typed as `kinds` and
 * `hows` say (0 string: kept; 1 long, 2 double: with hows[i] for what the fast path does not
 * take; 3 hows[i][text]; 4 hows[i](text)); an empty field of a typed column, or one equal to
 * `null` (not None), becomes None. `line` is the physical line where the previous record ended;
 * each row's first line goes to `line_nos`. `quote` is the quote character, or "" for none.
 * `final`: no text follows this. Returns how it stopped, where (pos, line), and:
 *   0 len(rows) reached `limit`;
 *   1 every complete record is read: pos is len(text), or where the unfinished last record starts;
 *   2 the record at pos needs the csv module (line: before it);
 *   3 a record has the wrong number of fields (payload: the fields; it spans lines start..line,
 *     and pos is past it), unless extra_ok or optional_ok lets it be cut or padded;
 *   4 a field does not convert (payload: (column index, the field); start..line, pos past it).
 * A blank line is not a record.
 */
static PyObject *split_rows(PyObject *self, PyObject *args) {
    PyObject *text, *rows, *line_nos, *kinds_obj, *hows, *null, *delimiter_obj, *quote_obj;
    Py_ssize_t pos, limit, line;
    int final, extra_ok, optional_ok;
    if (!PyArg_ParseTuple(args, "UnpO!O!nnO!O!OppUU:split_rows", &text, &pos, &final, &PyList_Type, &rows, &PyList_Type,
                          &line_nos, &limit, &line, &PyTuple_Type, &kinds_obj, &PyTuple_Type, &hows, &null, &extra_ok,
                          &optional_ok, &delimiter_obj, &quote_obj))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj);
    if (ncols < 1 || PyTuple_GET_SIZE(hows) != ncols || PyUnicode_GET_LENGTH(delimiter_obj) != 1 ||
        PyUnicode_GET_LENGTH(quote_obj) > 1) {
        PyErr_SetString(PyExc_ValueError, "kinds and hows need one entry per column; delimiter one character; quote at most one");
        return NULL;
    }
    int kinds[ncols];
    Columns c = {ncols, kinds, hows, null, 0, extra_ok, optional_ok};
    if (read_kinds(kinds_obj, kinds, ncols, &c.typed) < 0)
        return NULL;
    Py_UCS4 delimiter = PyUnicode_READ_CHAR(delimiter_obj, 0);
    int quoting = PyUnicode_GET_LENGTH(quote_obj) == 1;
    Py_UCS4 quote = quoting ? PyUnicode_READ_CHAR(quote_obj, 0) : 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int done = DONE_END;
    Py_ssize_t start = line + 1;
    PyObject *payload = NULL;

    while (pos < n) {
        if (PyList_GET_SIZE(rows) >= limit) {
            done = DONE_FULL;
            break;
        }
        Py_ssize_t record = pos, lines = 0;
        Py_UCS4 ch = PyUnicode_READ(kind, data, pos);
        if (ch == '\n') { /* a blank line */
            pos++;
            line++;
            continue;
        }
        if (ch == '\r' && pos + 1 < n && PyUnicode_READ(kind, data, pos + 1) == '\n') {
            pos += 2;
            line++;
            continue;
        }
        PyObject *fields = PyList_New(0);
        if (!fields)
            goto fail;
        int outcome = 0; /* 1 record complete, 2 slow, 3 unfinished */
        while (!outcome) {
            Py_ssize_t a = pos;
            PyObject *field;
            if (quoting && pos < n && PyUnicode_READ(kind, data, pos) == quote) {
                Py_ssize_t i = pos + 1;
                int doubled = 0, closed = 0;
                while (i < n) {
                    Py_UCS4 q = PyUnicode_READ(kind, data, i);
                    if (q == quote) {
                        if (i + 1 < n && PyUnicode_READ(kind, data, i + 1) == quote) {
                            doubled = 1;
                            i += 2;
                            continue;
                        }
                        closed = 1;
                        break;
                    }
                    if (q == '\n')
                        lines++;
                    else if (q == '\r') {
                        outcome = 2;
                        break;
                    }
                    i++;
                }
                if (outcome)
                    break;
                if (!closed) {
                    outcome = final ? 2 : 3;
                    break;
                }
                /* after the closing quote: a delimiter, the line's end, or the text's end */
                Py_ssize_t after = i + 1;
                Py_UCS4 next = after < n ? PyUnicode_READ(kind, data, after) : 0;
                int ends_line = after >= n || next == '\n' ||
                                (next == '\r' && after + 1 < n && PyUnicode_READ(kind, data, after + 1) == '\n');
                if (!(ends_line || next == delimiter)) {
                    outcome = 2;
                    break;
                }
                if (after >= n && !final) {
                    outcome = 3;
                    break;
                }
                field = unquote(text, kind, data, a + 1, i, quote, doubled);
                pos = after;
            } else {
                Py_ssize_t i = pos;
                Py_UCS4 f = 0;
                while (i < n) {
                    f = PyUnicode_READ(kind, data, i);
                    if (f == delimiter || f == '\n' || f == '\r' || (quoting && f == quote))
                        break;
                    i++;
                }
                if (i < n && ((quoting && f == quote) ||
                              (f == '\r' && !(i + 1 < n && PyUnicode_READ(kind, data, i + 1) == '\n')))) {
                    outcome = 2;
                    break;
                }
                if (i >= n && !final) {
                    outcome = 3;
                    break;
                }
                field = PyUnicode_Substring(text, a, i);
                pos = i;
            }
            if (!field || PyList_Append(fields, field) < 0) {
                Py_XDECREF(field);
                Py_DECREF(fields);
                goto fail;
            }
            Py_DECREF(field);
            /* pos: at a delimiter, a line end, or the text's end */
            if (pos >= n) {
                outcome = 1;
            } else {
                Py_UCS4 sep = PyUnicode_READ(kind, data, pos);
                if (sep == delimiter) {
                    pos++;
                    if (pos >= n && !final)
                        outcome = 3;
                    else if (pos >= n) { /* "a," at the very end: a last, empty field */
                        PyObject *empty = PyUnicode_New(0, 0);
                        if (!empty || PyList_Append(fields, empty) < 0) {
                            Py_XDECREF(empty);
                            Py_DECREF(fields);
                            goto fail;
                        }
                        Py_DECREF(empty);
                        outcome = 1;
                    }
                } else {
                    pos += sep == '\r' ? 2 : 1;
                    lines++;
                    outcome = 1;
                }
            }
        }
        if (outcome != 1) {
            Py_DECREF(fields);
            pos = record;
            done = outcome == 2 ? DONE_SLOW : DONE_END;
            break;
        }
        if (pos >= n && PyUnicode_READ(kind, data, n - 1) != '\n')
            lines++; /* the last line, without a line break */
        start = line + 1;
        line += lines;
        int typed = type_record(&c, fields, &payload);
        if (typed < 0) {
            Py_DECREF(fields);
            goto fail;
        }
        if (typed != 1) {
            Py_DECREF(fields);
            done = typed;
            break;
        }
        PyObject *number = PyLong_FromSsize_t(start);
        int appended = number && PyList_Append(rows, fields) == 0 && PyList_Append(line_nos, number) == 0;
        Py_XDECREF(number);
        Py_DECREF(fields);
        if (!appended)
            goto fail;
    }
    return Py_BuildValue("innnN", done, pos, line, start, payload ? payload : Py_NewRef(Py_None));
fail:
    Py_XDECREF(payload);
    return NULL;
}

/*
 * type_rows(fields, kinds, hows, null, extra_ok, optional_ok) -> (status, payload)
 * One record the csv module read, checked and typed in place as split_rows would:
 * status 1 ready, 3 wrong number of fields, 4 a field does not convert (payload as in split_rows).
 */
static PyObject *type_fields(PyObject *self, PyObject *args) {
    PyObject *fields, *kinds_obj, *hows, *null;
    int extra_ok, optional_ok;
    if (!PyArg_ParseTuple(args, "O!O!O!Opp:type_fields", &PyList_Type, &fields, &PyTuple_Type, &kinds_obj, &PyTuple_Type,
                          &hows, &null, &extra_ok, &optional_ok))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj);
    if (ncols < 1 || PyTuple_GET_SIZE(hows) != ncols) {
        PyErr_SetString(PyExc_ValueError, "kinds and hows need one entry per column");
        return NULL;
    }
    int kinds[ncols];
    Columns c = {ncols, kinds, hows, null, 0, extra_ok, optional_ok};
    if (read_kinds(kinds_obj, kinds, ncols, &c.typed) < 0)
        return NULL;
    PyObject *payload = NULL;
    int status = type_record(&c, fields, &payload);
    if (status < 0)
        return NULL;
    return Py_BuildValue("iN", status, payload ? payload : Py_NewRef(Py_None));
}


/* ---- writing: rows to CSV text (the csv module's QUOTE_MINIMAL with doubled quotes, LF lines) ---- */


enum { OUT_PLAIN = 0, OUT_BOOLEAN = 1, OUT_TIMESTAMP = 2 };

typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

static int grow(Buffer *b, size_t more) {
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

static int add(Buffer *b, const char *s, size_t n) {
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* datetime.isoformat() of a naive or UTC datetime; 0 when it is neither (the Python writer takes the batch) */
static int add_isoformat(Buffer *b, PyObject *v) {
    char text[ISOFORMAT_MAX];
    size_t n = isoformat(text, v);
    if (!n)
        return 0;
    return add(b, text, n) < 0 ? -1 : 1;
}

/* 1 written, 0 a value this does not write (the Python writer takes the batch), -1 error */
static int add_field(Buffer *b, PyObject *v, int kind, char delimiter, char quote) {
    if (v == Py_None)
        return 1;
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s)
            return -1;
        if (n == 0) /* "" is null_string: that row is written by the careful writer */
            return 0;
        int quoted = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            char c = s[i];
            if (c == '\r')
                return 0;
            if (c == delimiter || c == quote || c == '\n')
                quoted = 1;
        }
        if (!quoted)
            return add(b, s, (size_t)n) < 0 ? -1 : 1;
        if (grow(b, (size_t)n * 2 + 2) < 0)
            return -1;
        char *out = b->data + b->len;
        *out++ = quote;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] == quote)
                *out++ = quote;
            *out++ = s[i];
        }
        *out++ = quote;
        b->len = (size_t)(out - b->data);
        return 1;
    }
    if (PyBool_Check(v)) {
        int t = v == Py_True;
        if (kind == OUT_BOOLEAN)
            return add(b, t ? "true" : "false", t ? 4 : 5) < 0 ? -1 : 1;
        return add(b, t ? "True" : "False", t ? 4 : 5) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        if (kind == OUT_BOOLEAN) /* 1 and 0 would be true and false there (a dict lookup): not this writer's case */
            return 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return 0;
        char text[24];
        int len = snprintf(text, sizeof text, "%lld", n);
        return add(b, text, (size_t)len) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d))
            return 0;
        char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!text)
            return -1;
        int rc = add(b, text, strlen(text)) < 0 ? -1 : 1;
        PyMem_Free(text);
        return rc;
    }
    if (kind == OUT_TIMESTAMP && PyDateTime_CheckExact(v))
        return add_isoformat(b, v);
    return 0;
}

/*
 * format_rows(rows, kinds, delimiter, quote) -> bytes, or None
 *
 * The rows as UTF-8 CSV text with LF line ends, as CsvFormatter writes them with quote_policy
 * MINIMAL, the quote doubled, null_string "": kinds[i] 0 (values as the csv module writes them),
 * 1 (booleans true/false), 2 (datetimes in ISO 8601). None when a value needs more than that (an
 * empty string, a carriage return, another type, a time zone other than UTC): the Python writer
 * then writes the batch.
 */
static PyObject *format_rows(PyObject *self, PyObject *args) {
    PyObject *rows, *kinds_obj;
    int delimiter, quote;
    if (!PyArg_ParseTuple(args, "O!O!CC:format_rows", &PyList_Type, &rows, &PyTuple_Type, &kinds_obj, &delimiter, &quote))
        return NULL;
    if (delimiter > 127 || quote > 127) {
        PyErr_SetString(PyExc_ValueError, "delimiter and quote must be ASCII");
        return NULL;
    }
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj);
    if (ncols < 2) /* the csv module quotes a lone empty field: not this writer's case */
        Py_RETURN_NONE;
    int kinds[ncols], typed;
    if (read_kinds(kinds_obj, kinds, ncols, &typed) < 0)
        return NULL;
    Buffer b = {NULL, 0, 0};
    Py_ssize_t n = PyList_GET_SIZE(rows);
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        PyObject *seq = PySequence_Fast(row, "rows must be sequences");
        if (!seq)
            goto fail;
        if (PySequence_Fast_GET_SIZE(seq) != ncols) {
            Py_DECREF(seq);
            goto bail;
        }
        PyObject **values = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < ncols; i++) {
            if (i && add(&b, (const char *)&delimiter, 1) < 0) {
                Py_DECREF(seq);
                goto fail;
            }
            int done = add_field(&b, values[i], kinds[i], (char)delimiter, (char)quote);
            if (done <= 0) {
                Py_DECREF(seq);
                if (done < 0)
                    goto fail;
                goto bail;
            }
        }
        Py_DECREF(seq);
        if (add(&b, "\n", 1) < 0)
            goto fail;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data ? b.data : "", (Py_ssize_t)b.len);
    PyMem_Free(b.data);
    return out;
bail:
    PyMem_Free(b.data);
    Py_RETURN_NONE;
fail:
    PyMem_Free(b.data);
    return NULL;
}


/* ---- JSON objects (Kafka values) to typed rows ---- */

enum { IN_STRING = 0, IN_LONG = 1, IN_DOUBLE = 2, IN_BOOLEAN = 3, IN_TIMESTAMP = 4 };
#define BAIL 0 /* a value this does not read exactly as orjson + the columns' converters: the Python path takes the batch */

typedef struct {
    const unsigned char *p, *end;
} Cursor;

static void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= h - '0';
        else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
        else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/* A JSON string at c->p (the opening quote): *start and *len give its raw bytes; *escaped whether it has escapes. 1 ok, 0 bail. */
static int scan_string(Cursor *c, const unsigned char **start, Py_ssize_t *len, int *escaped) {
    const unsigned char *p = c->p + 1;
    *escaped = 0;
    while (p < c->end) {
        unsigned char ch = *p;
        if (ch == '"') {
            *start = c->p + 1;
            *len = p - (c->p + 1);
            c->p = p + 1;
            return 1;
        }
        if (ch < 0x20)
            return BAIL;
        if (ch == '\\') {
            *escaped = 1;
            p += 2;
            continue;
        }
        p++;
    }
    return BAIL;
}

/* The str of a scanned JSON string, or NULL with no error set (bail), or NULL with an error. */
static PyObject *string_value(const unsigned char *s, Py_ssize_t n, int escaped) {
    if (!escaped) {
        PyObject *v = PyUnicode_DecodeUTF8((const char *)s, n, "strict");
        if (!v && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            PyErr_Clear();
        return v;
    }
    char small[256] = {0}, *out = n <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc((size_t)n);
    if (!out)
        return PyErr_NoMemory();
    Py_ssize_t o = 0;
    PyObject *v = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = (char)s[i];
            continue;
        }
        if (++i >= n)
            goto done;
        unsigned cp;
        switch (s[i]) {
        case '"': out[o++] = '"'; continue;
        case '\\': out[o++] = '\\'; continue;
        case '/': out[o++] = '/'; continue;
        case 'b': out[o++] = '\b'; continue;
        case 'f': out[o++] = '\f'; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'u':
            if (i + 4 >= n || !hex4(s + i + 1, &cp))
                goto done;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair, or bail */
                unsigned low;
                if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' || !hex4(s + i + 3, &low) || low < 0xDC00 || low > 0xDFFF)
                    goto done;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto done;
            }
            /* UTF-8 of cp: at most 4 bytes, never more than the 6 escape bytes it replaces */
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xC0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out[o++] = (char)(0xE0 | cp >> 12);
                out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (char)(0xF0 | cp >> 18);
                out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
                out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        default:
            goto done;
        }
    }
    v = PyUnicode_DecodeUTF8(out, o, "strict");
    if (!v && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        PyErr_Clear();
done:
    if (out != small)
        PyMem_Free(out);
    return v;
}

/* A JSON number at c->p: 1 with *out (int or float), 0 bail, -1 error. */
static int number_value(Cursor *c, PyObject **out) {
    const unsigned char *p = c->p, *start = p;
    if (p < c->end && *p == '-')
        p++;
    if (p >= c->end || !(*p >= '0' && *p <= '9'))
        return BAIL;
    if (*p == '0')
        p++;
    else
        while (p < c->end && *p >= '0' && *p <= '9')
            p++;
    int is_float = 0;
    if (p < c->end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= c->end || !(*p >= '0' && *p <= '9'))
            return BAIL;
        while (p < c->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < c->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= c->end || !(*p >= '0' && *p <= '9'))
            return BAIL;
        while (p < c->end && *p >= '0' && *p <= '9')
            p++;
    }
    Py_ssize_t n = p - start;
    char text[64];
    if (n >= (Py_ssize_t)sizeof text)
        return BAIL;
    memcpy(text, start, (size_t)n);
    text[n] = '\0';
    c->p = p;
    if (is_float) {
        double d = PyOS_string_to_double(text, NULL, NULL);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return BAIL;
        }
        if (!isfinite(d))
            return BAIL;
        *out = PyFloat_FromDouble(d);
    } else {
        if (n - (text[0] == '-') > 18)
            return BAIL;
        *out = PyLong_FromLongLong(strtoll(text, NULL, 10));
    }
    return *out ? 1 : -1;
}

/* One value for a column of `kind`: 1 with *out (a new reference), 0 bail, -1 error. */
static int column_value(Cursor *c, int kind, PyObject *how, PyObject **out) {
    unsigned char ch = *c->p;
    if (ch == 'n') {
        if (c->end - c->p < 4 || memcmp(c->p, "null", 4))
            return BAIL;
        c->p += 4;
        *out = Py_NewRef(Py_None);
        return 1;
    }
    if (ch == 't' || ch == 'f') {
        int t = ch == 't';
        Py_ssize_t n = t ? 4 : 5;
        if (c->end - c->p < n || memcmp(c->p, t ? "true" : "false", (size_t)n))
            return BAIL;
        if (kind != IN_BOOLEAN)
            return BAIL;
        c->p += n;
        *out = Py_NewRef(t ? Py_True : Py_False);
        return 1;
    }
    if (ch == '"') {
        if (kind != IN_STRING && kind != IN_TIMESTAMP)
            return BAIL;
        const unsigned char *s;
        Py_ssize_t n;
        int escaped;
        if (!scan_string(c, &s, &n, &escaped))
            return BAIL;
        PyObject *text = string_value(s, n, escaped);
        if (!text)
            return PyErr_Occurred() ? -1 : BAIL;
        if (kind == IN_STRING) {
            *out = text;
            return 1;
        }
        PyObject *value = PyObject_CallOneArg(how, text);
        Py_DECREF(text);
        if (!value) {
            if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                return BAIL;
            }
            return -1;
        }
        *out = value;
        return 1;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        if (kind != IN_LONG && kind != IN_DOUBLE)
            return BAIL;
        PyObject *number;
        int got = number_value(c, &number);
        if (got <= 0)
            return got;
        if (kind == IN_LONG) {
            if (!PyLong_CheckExact(number)) {
                Py_DECREF(number);
                return BAIL;
            }
            *out = number;
            return 1;
        }
        if (PyLong_CheckExact(number)) {
            double d = PyLong_AsDouble(number);
            Py_DECREF(number);
            if (d == -1.0 && PyErr_Occurred())
                return -1;
            *out = PyFloat_FromDouble(d);
            return *out ? 1 : -1;
        }
        *out = number;
        return 1;
    }
    return BAIL; /* an object or an array */
}

/* Skips a JSON string that orjson would read (valid escapes and UTF-8): 1 ok, 0 bail. */
static int valid_string(Cursor *c) {
    const unsigned char *s;
    Py_ssize_t n;
    int escaped;
    if (!scan_string(c, &s, &n, &escaped))
        return BAIL;
    PyObject *text = string_value(s, n, escaped);
    if (!text) {
        PyErr_Clear();
        return BAIL;
    }
    Py_DECREF(text);
    return 1;
}

/* Skips any JSON value (of a key that is not a column): only scalars; 1 ok, 0 bail. */
static int skip_value(Cursor *c) {
    PyObject *ignored = NULL;
    unsigned char ch = *c->p;
    if (ch == '"')
        return valid_string(c);
    if (ch == 'n' || ch == 't' || ch == 'f') {
        Py_ssize_t n = ch == 'f' ? 5 : 4;
        if (c->end - c->p < n || memcmp(c->p, ch == 'n' ? "null" : ch == 't' ? "true" : "false", (size_t)n))
            return BAIL;
        c->p += n;
        return 1;
    }
    int got = number_value(c, &ignored);
    Py_XDECREF(ignored);
    if (got < 0)
        PyErr_Clear();
    return got > 0;
}

/*
 * json_rows(values, names, kinds, hows) -> rows, or None
 *
 * Flat JSON objects (bytes) to rows in column order, as KafkaInput's JSON decoding gives them
 * (orjson, then the columns' converters): names are the columns' UTF-8 names; kinds 0 string,
 * 1 long, 2 double, 3 boolean, 4 timestamp (hows[i](text) parses it); a missing key or null is
 * None. None when any value is out of the ordinary (not an object, nested values, a number in a
 * string column, a value that does not convert...): the Python path then decodes the batch and
 * reports what is wrong.
 */
static PyObject *json_rows(PyObject *self, PyObject *args) {
    PyObject *values, *names, *kinds_obj, *hows;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:json_rows", &PyList_Type, &values, &PyTuple_Type, &names, &PyTuple_Type, &kinds_obj,
                          &PyTuple_Type, &hows))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(names);
    if (ncols < 1 || PyTuple_GET_SIZE(kinds_obj) != ncols || PyTuple_GET_SIZE(hows) != ncols) {
        PyErr_SetString(PyExc_ValueError, "names, kinds and hows need one entry per column");
        return NULL;
    }
    int kinds[ncols];
    const char *name_text[ncols];
    Py_ssize_t name_len[ncols];
    for (Py_ssize_t i = 0; i < ncols; i++) {
        kinds[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if ((kinds[i] == -1 && PyErr_Occurred()) || !PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "kinds are ints and names bytes");
            return NULL;
        }
        name_text[i] = PyBytes_AS_STRING(name);
        name_len[i] = PyBytes_GET_SIZE(name);
    }
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *rows = PyList_New(n);
    if (!rows)
        return NULL;
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *value = PyList_GET_ITEM(values, r);
        if (!PyBytes_Check(value))
            goto bail;
        Cursor c = {(const unsigned char *)PyBytes_AS_STRING(value), (const unsigned char *)PyBytes_AS_STRING(value) + PyBytes_GET_SIZE(value)};
        PyObject *row = PyList_New(ncols);
        if (!row)
            goto fail;
        PyList_SET_ITEM(rows, r, row);
        for (Py_ssize_t i = 0; i < ncols; i++)
            PyList_SET_ITEM(row, i, Py_NewRef(Py_None));
        skip_space(&c);
        if (c.p >= c.end || *c.p != '{')
            goto bail;
        c.p++;
        skip_space(&c);
        if (c.p < c.end && *c.p == '}') {
            c.p++;
        } else {
            for (;;) {
                skip_space(&c);
                if (c.p >= c.end || *c.p != '"')
                    goto bail;
                const unsigned char *key;
                Py_ssize_t key_len;
                int escaped;
                if (!scan_string(&c, &key, &key_len, &escaped) || escaped)
                    goto bail;
                skip_space(&c);
                if (c.p >= c.end || *c.p != ':')
                    goto bail;
                c.p++;
                skip_space(&c);
                if (c.p >= c.end)
                    goto bail;
                Py_ssize_t column = -1;
                for (Py_ssize_t i = 0; i < ncols; i++)
                    if (name_len[i] == key_len && memcmp(name_text[i], key, (size_t)key_len) == 0) {
                        column = i;
                        break;
                    }
                if (column < 0) {
                    Cursor name = {key - 1, key + key_len + 1};
                    if (!valid_string(&name) || !skip_value(&c))
                        goto bail;
                } else {
                    PyObject *item;
                    int got = column_value(&c, kinds[column], PyTuple_GET_ITEM(hows, column), &item);
                    if (got < 0)
                        goto fail;
                    if (got == 0)
                        goto bail;
                    PyList_SetItem(row, column, item);
                }
                skip_space(&c);
                if (c.p < c.end && *c.p == ',') {
                    c.p++;
                    continue;
                }
                if (c.p < c.end && *c.p == '}') {
                    c.p++;
                    break;
                }
                goto bail;
            }
        }
        skip_space(&c);
        if (c.p != c.end)
            goto bail;
    }
    return rows;
bail:
    Py_DECREF(rows);
    Py_RETURN_NONE;
fail:
    Py_DECREF(rows);
    return NULL;
}

/* ---- CSV text straight to Kafka records (key, JSON value), with no Python object per row ---- */

enum { ENC_STRING = 0, ENC_LONG = 1, ENC_DOUBLE = 2, ENC_BOOLEAN = 3, ENC_TIMESTAMP = 4 };
enum { DONE_ODD = 2, DONE_NOT_ASCII = 5 };

typedef struct {
    const char *text;
    Py_ssize_t len;
    int value;
} Word;

/* The JSON of a long field as the converters + orjson write it: [+-]digits, at most 18 digits. 1, 0 odd. */
static int enc_long(Buffer *b, const char *s, Py_ssize_t n) {
    Py_ssize_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (n <= i || n - i > 18)
        return 0;
    long long v = 0;
    for (Py_ssize_t j = i; j < n; j++) {
        if (s[j] < '0' || s[j] > '9')
            return 0;
        v = v * 10 + (s[j] - '0');
    }
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%lld", s[0] == '-' ? -v : v);
    return add(b, digits, (size_t)len) < 0 ? -1 : 1;
}

/* A double field as repr(float(text)) (= orjson) writes it, for plain decimals ([+-]digits[.digits])
 * of at most 15 significant digits between 1e-4 and 1e15 (or zero): the shortest text that reads
 * back as the same double is then the decimal itself, trimmed. 1, 0 odd. */
static int enc_double(Buffer *b, const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    int negative = 0;
    if (n && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        i = 1;
    }
    Py_ssize_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    Py_ssize_t int_end = i, frac_start = i, frac_end = i;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_end = i;
    }
    if (i != n || (int_end == int_start && frac_end == frac_start))
        return 0;
    while (int_start < int_end && s[int_start] == '0')
        int_start++; /* leading zeros */
    while (frac_end > frac_start && s[frac_end - 1] == '0')
        frac_end--; /* trailing zeros */
    Py_ssize_t int_digits = int_end - int_start, frac_digits = frac_end - frac_start;
    Py_ssize_t significant = int_digits + frac_digits;
    if (int_digits == 0 && frac_digits > 0) {
        Py_ssize_t zeros = 0;
        while (s[frac_start + zeros] == '0')
            zeros++;
        if (zeros > 3)
            return 0; /* below 1e-4: repr writes an exponent */
        significant -= zeros;
    }
    if (int_digits > 15 || significant > 15)
        return 0;
    if (grow(b, (size_t)(int_digits + frac_digits + 4)) < 0)
        return -1;
    char *p = b->data + b->len;
    if (negative)
        *p++ = '-';
    if (int_digits) {
        memcpy(p, s + int_start, (size_t)int_digits);
        p += int_digits;
    } else {
        *p++ = '0';
    }
    *p++ = '.';
    if (frac_digits) {
        memcpy(p, s + frac_start, (size_t)frac_digits);
        p += frac_digits;
    } else {
        *p++ = '0';
    }
    b->len = (size_t)(p - b->data);
    return 1;
}

static int two(const char *s, int *out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* A timestamp field (no format) as datetime.fromisoformat + UTC + isoformat() write it, for
 * YYYY-MM-DDTHH:MM:SS with nothing, Z or +00:00 after: "...+00:00". 1, 0 odd. */
static int enc_timestamp(Buffer *b, const char *s, Py_ssize_t n) {
    if (!(n == 19 || (n == 20 && s[19] == 'Z') || (n == 25 && memcmp(s + 19, "+00:00", 6) == 0)))
        return 0;
    int century, yy, month, day, hour, minute, second;
    if (!two(s, &century) || !two(s + 2, &yy) || s[4] != '-' || !two(s + 5, &month) || s[7] != '-' ||
        !two(s + 8, &day) || s[10] != 'T' || !two(s + 11, &hour) || s[13] != ':' || !two(s + 14, &minute) ||
        s[16] != ':' || !two(s + 17, &second))
        return 0;
    int year = century * 100 + yy;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days[month - 1] + (month == 2 && leap) || hour > 23 ||
        minute > 59 || second > 59)
        return 0;
    if (add(b, "\"", 1) < 0 || add(b, s, 19) < 0 || add(b, "+00:00\"", 7) < 0)
        return -1;
    return 1;
}

/* A string field as orjson writes it: printable ASCII, with '"' and '\' escaped. 1, 0 odd (control characters). */
static int enc_string(Buffer *b, const char *s, Py_ssize_t n) {
    if (grow(b, (size_t)n * 2 + 2) < 0)
        return -1;
    char *p = b->data + b->len;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if ((unsigned char)c < 0x20)
            return 0;
        if (c == '"' || c == '\\')
            *p++ = '\\';
        *p++ = c;
    }
    *p++ = '"';
    b->len = (size_t)(p - b->data);
    return 1;
}

/* Whether a field is the null_string (none when null_text is NULL). */
static int is_null(const char *s, Py_ssize_t len, const char *null_text, Py_ssize_t null_len) {
    return null_text && len == null_len && memcmp(s, null_text, (size_t)null_len) == 0;
}

/* One field's JSON as the Python path writes it: 1 written, 0 odd, -1 error. */
static int enc_value(Buffer *b, const char *s, Py_ssize_t len, int kind, const char *null_text, Py_ssize_t null_len,
                     const Word *words, Py_ssize_t nwords) {
    if (is_null(s, len, null_text, null_len) || (len == 0 && kind != ENC_STRING))
        return add(b, "null", 4) < 0 ? -1 : 1;
    switch (kind) {
    case ENC_STRING:
        return enc_string(b, s, len);
    case ENC_LONG:
        return enc_long(b, s, len);
    case ENC_DOUBLE:
        return enc_double(b, s, len);
    case ENC_BOOLEAN:
        for (Py_ssize_t w = 0; w < nwords; w++)
            if (words[w].len == len && memcmp(words[w].text, s, (size_t)len) == 0)
                return words[w].value ? (add(b, "true", 4) < 0 ? -1 : 1) : (add(b, "false", 5) < 0 ? -1 : 1);
        return 0;
    case ENC_TIMESTAMP:
        return enc_timestamp(b, s, len);
    default:
        return 0;
    }
}

/*
 * encode_records(text, pos, final, limit, line, kinds, booleans, null, delimiter, quote, key_index,
 *                required, parts) -> (done, pos, line, count, data)
 *
 * What split_rows, the validate and add_columns filters and the Kafka output's JSON values make of
 * plain CSV records, without the rows in between: each record of text[pos:] (ASCII) becomes its key
 * (the field key_index, a string column) and its JSON value, written into `data` as a native
 * uint32 key length, a uint32 value length, the key, the value. `parts` gives the value: for each
 * output column, ('"name":' bytes, with ',' before all but the first; then a column index, or the
 * constant's JSON as bytes). kinds: 0 string, 1 long, 2 double, 3 boolean (`booleans`: (word,
 * value) pairs), 4 timestamp (ISO 8601, no format). An empty field of a typed column, or one equal
 * to `null`, is null; `required` columns must be neither null nor empty.
 *
 * Only records that come out exactly as on the Python path are written: a record with a quote
 * character or a stray carriage return, the wrong number of fields, an empty key, a missing
 * required value or a value out of the ordinary ends the call (2, pos at it, line before it), and
 * the caller reads it the usual way. Otherwise as split_rows: 0 count reached limit, 1 every
 * complete record is read; 5 the text is not ASCII (nothing read).
 */
static PyObject *encode_records(PyObject *self, PyObject *args) {
    PyObject *text, *kinds_obj, *booleans, *null, *delimiter_obj, *quote_obj, *required_obj, *parts;
    Py_ssize_t pos, limit, line, key_index;
    int final;
    if (!PyArg_ParseTuple(args, "UnpnnO!O!OUUnO!O!:encode_records", &text, &pos, &final, &limit, &line, &PyTuple_Type,
                          &kinds_obj, &PyTuple_Type, &booleans, &null, &delimiter_obj, &quote_obj, &key_index,
                          &PyTuple_Type, &required_obj, &PyTuple_Type, &parts))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj), nparts = PyTuple_GET_SIZE(parts);
    Py_ssize_t nwords = PyTuple_GET_SIZE(booleans), nrequired = PyTuple_GET_SIZE(required_obj);
    if (ncols < 1 || key_index < 0 || key_index >= ncols || PyUnicode_GET_LENGTH(delimiter_obj) != 1 ||
        PyUnicode_GET_LENGTH(quote_obj) > 1) {
        PyErr_SetString(PyExc_ValueError, "encode_records: bad column settings");
        return NULL;
    }
    /* a delimiter past ASCII never occurs in an ASCII text: nothing would split */
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_READ_CHAR(delimiter_obj, 0) > 127)
        return Py_BuildValue("innny#", DONE_NOT_ASCII, pos, line, (Py_ssize_t)0, "", (Py_ssize_t)0);
    int kinds[ncols], typed;
    if (read_kinds(kinds_obj, kinds, ncols, &typed) < 0)
        return NULL;
    int is_required[ncols];
    for (Py_ssize_t i = 0; i < ncols; i++)
        is_required[i] = 0;
    for (Py_ssize_t r = 0; r < nrequired; r++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(required_obj, r));
        if (i < 0 || i >= ncols) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "encode_records: a required column is out of range");
            return NULL;
        }
        is_required[i] = 1;
    }
    Word words[nwords > 0 ? nwords : 1];
    for (Py_ssize_t w = 0; w < nwords; w++) {
        PyObject *pair = PyTuple_GET_ITEM(booleans, w);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "encode_records: booleans are (word, value) pairs");
            return NULL;
        }
        words[w].text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &words[w].len);
        words[w].value = PyObject_IsTrue(PyTuple_GET_ITEM(pair, 1));
        if (!words[w].text || words[w].value < 0)
            return NULL;
    }
    const char *part_name[nparts > 0 ? nparts : 1], *part_const[nparts > 0 ? nparts : 1];
    Py_ssize_t part_name_len[nparts > 0 ? nparts : 1], part_column[nparts > 0 ? nparts : 1];
    Py_ssize_t part_const_len[nparts > 0 ? nparts : 1];
    for (Py_ssize_t j = 0; j < nparts; j++) {
        PyObject *part = PyTuple_GET_ITEM(parts, j);
        if (!PyTuple_Check(part) || PyTuple_GET_SIZE(part) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(part, 0))) {
            PyErr_SetString(PyExc_TypeError, "encode_records: parts are (name bytes, column index or constant bytes)");
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(part, 0), *source = PyTuple_GET_ITEM(part, 1);
        part_name[j] = PyBytes_AS_STRING(name);
        part_name_len[j] = PyBytes_GET_SIZE(name);
        part_const[j] = NULL;
        part_const_len[j] = 0;
        part_column[j] = -1;
        if (PyBytes_Check(source)) {
            part_const[j] = PyBytes_AS_STRING(source);
            part_const_len[j] = PyBytes_GET_SIZE(source);
        } else {
            part_column[j] = PyLong_AsSsize_t(source);
            if (part_column[j] < 0 || part_column[j] >= ncols) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "encode_records: a part's column is out of range");
                return NULL;
            }
        }
    }
    int in_value[ncols];
    for (Py_ssize_t i = 0; i < ncols; i++)
        in_value[i] = 0;
    for (Py_ssize_t j = 0; j < nparts; j++)
        if (part_column[j] >= 0)
            in_value[part_column[j]] = 1;
    const char *null_text = NULL;
    Py_ssize_t null_len = 0;
    if (null != Py_None) {
        if (!PyUnicode_Check(null) || !(null_text = PyUnicode_AsUTF8AndSize(null, &null_len)))
            return NULL;
    }
    char delimiter = (char)PyUnicode_READ_CHAR(delimiter_obj, 0);
    int quote = PyUnicode_GET_LENGTH(quote_obj) == 1 ? (int)PyUnicode_READ_CHAR(quote_obj, 0) : -1;
    const char *data = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), count = 0;
    Py_ssize_t starts[ncols], ends[ncols];
    Buffer out = {NULL, 0, 0};
    int done = DONE_END;

    while (pos < n) {
        if (count >= limit) {
            done = DONE_FULL;
            break;
        }
        if (data[pos] == '\n') { /* a blank line */
            pos++;
            line++;
            continue;
        }
        if (data[pos] == '\r' && pos + 1 < n && data[pos + 1] == '\n') {
            pos += 2;
            line++;
            continue;
        }
        /* the record's fields: one line, no quote, no stray carriage return */
        Py_ssize_t i = pos, width = 0, eol = n;
        int odd = 0;
        starts[0] = pos;
        for (;; i++) {
            if (i >= n) {
                if (!final)
                    goto finish; /* DONE_END: the record goes on in the next text */
                eol = i;
                break;
            }
            char c = data[i];
            if (c == delimiter) {
                if (width + 1 >= ncols) {
                    odd = 1; /* too many fields */
                    break;
                }
                ends[width++] = i;
                starts[width] = i + 1;
            } else if (c == '\n') {
                eol = i;
                break;
            } else if (c == '\r') {
                if (i + 1 < n && data[i + 1] == '\n') {
                    eol = i;
                    break;
                }
                if (i + 1 >= n && !final)
                    goto finish;
                odd = 1;
                break;
            } else if (c == quote) {
                odd = 1;
                break;
            }
        }
        if (odd || width + 1 != ncols) {
            done = DONE_ODD;
            break;
        }
        ends[width] = eol;
        size_t record = out.len;
        if (grow(&out, 8) < 0)
            goto fail;
        out.len += 8;
        Py_ssize_t key_len = ends[key_index] - starts[key_index];
        if (key_len == 0 || is_null(data + starts[key_index], key_len, null_text, null_len)) {
            out.len = record;
            done = DONE_ODD;
            break;
        }
        if (add(&out, data + starts[key_index], (size_t)key_len) < 0)
            goto fail;
        size_t value_start = out.len;
        int ok = add(&out, "{", 1) < 0 ? -1 : 1;
        for (Py_ssize_t r = 0; ok == 1 && r < ncols; r++) {
            if (!is_required[r])
                continue;
            Py_ssize_t len = ends[r] - starts[r];
            if (len == 0 || is_null(data + starts[r], len, null_text, null_len))
                ok = 0;
        }
        for (Py_ssize_t j = 0; ok == 1 && j < nparts; j++) {
            if (add(&out, part_name[j], (size_t)part_name_len[j]) < 0) {
                ok = -1;
                break;
            }
            if (part_const[j]) {
                ok = add(&out, part_const[j], (size_t)part_const_len[j]) < 0 ? -1 : 1;
                continue;
            }
            ok = enc_value(&out, data + starts[part_column[j]], ends[part_column[j]] - starts[part_column[j]],
                           kinds[part_column[j]], null_text, null_len, words, nwords);
        }
        for (Py_ssize_t r = 0; ok == 1 && r < ncols; r++) {
            if (in_value[r])
                continue;
            size_t mark = out.len; /* a column not in the value must convert all the same */
            ok = enc_value(&out, data + starts[r], ends[r] - starts[r], kinds[r], null_text, null_len, words, nwords);
            out.len = mark;
        }
        if (ok == 1)
            ok = add(&out, "}", 1) < 0 ? -1 : 1;
        if (ok < 0)
            goto fail;
        if (ok == 0) {
            out.len = record;
            done = DONE_ODD;
            break;
        }
        uint32_t lengths[2] = {(uint32_t)key_len, (uint32_t)(out.len - value_start)};
        memcpy(out.data + record, lengths, 8);
        count++;
        line++;
        pos = eol >= n ? n : eol + (data[eol] == '\r' ? 2 : 1);
    }
finish:;
    PyObject *result = Py_BuildValue("innny#", done, pos, line, count, out.data ? out.data : "", (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return result;
fail:
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_rows", split_rows, METH_VARARGS, "typed rows from CSV text (see the source)"},
    {"type_fields", type_fields, METH_VARARGS, "one record's fields checked and typed (see the source)"},
    {"format_rows", format_rows, METH_VARARGS, "rows as CSV text (see the source)"},
    {"json_rows", json_rows, METH_VARARGS, "JSON objects as typed rows (see the source)"},
    {"encode_records", encode_records, METH_VARARGS, "CSV text as Kafka keys and JSON values (see the source)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrows", "The CSV parser's hot loop.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastrows(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    return PyModule_Create(&module);
}
