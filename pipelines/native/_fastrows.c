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

#include "_common.h"
#include "_isoformat.h"
#include "_jsonwrite.h"

enum { KIND_STRING = 0, KIND_LONG = 1, KIND_DOUBLE = 2, KIND_MAPPING = 3, KIND_CALL = 4 };
enum { DONE_FULL = 0, DONE_END = 1, DONE_SLOW = 2, DONE_WIDTH = 3, DONE_VALUE = 4 };

/* After a converter failed: 1 when with a ValueError, TypeError or OverflowError (or, with
 * key_error, a KeyError), cleared: the value does not convert; 0 for any other error, left set. */
static int not_convertible(int key_error) {
    if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_OverflowError) || (key_error && PyErr_ExceptionMatches(PyExc_KeyError))) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* s[0:n] as [+-]digits with 1 to 18 digits (so no overflow): 1 with *out, or 0 when it is not. */
static int plain_long(const char *s, Py_ssize_t n, long long *out) {
    Py_ssize_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (n <= i || n - i > 18)
        return 0;
    long long v = 0;
    for (Py_ssize_t j = i; j < n; j++) {
        if (s[j] < '0' || s[j] > '9')
            return 0;
        v = v * 10 + (s[j] - '0');
    }
    *out = s[0] == '-' ? -v : v;
    return 1;
}

/* 1 converted, 0 does not convert (a ValueError, TypeError, OverflowError or KeyError, cleared), -1 other error */
static int convert(int kind, PyObject *how, PyObject *text, PyObject **out) {
    PyObject *value = NULL;
    switch (kind) {
    case KIND_LONG: {
        Py_ssize_t n;
        long long v;
        const char *s = PyUnicode_AsUTF8AndSize(text, &n);
        if (!s)
            return -1;
        if (plain_long(s, n, &v)) {
            *out = PyLong_FromLongLong(v);
            return *out ? 1 : -1;
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
    return not_convertible(1) ? 0 : -1;
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

/* c set up for the columns of kinds_obj and hows, their kinds read into kinds (one int a column): 0, or -1 with an error. */
static int columns_init(Columns *c, int *kinds, PyObject *kinds_obj, PyObject *hows, PyObject *null, int extra_ok, int optional_ok) {
    *c = (Columns){PyTuple_GET_SIZE(kinds_obj), kinds, hows, null, 0, extra_ok, optional_ok};
    return read_kinds(kinds_obj, kinds, c->ncols, &c->typed);
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

/* ---- reading: CSV text to typed rows ---- */

/* The text split_rows reads, and how its records are written. */
typedef struct {
    PyObject *text;
    int kind; /* PyUnicode_KIND(text) */
    const void *data;
    Py_ssize_t n;
    Py_UCS4 delimiter, quote; /* quote: only when quoting */
    int quoting, final;       /* final: no text follows this one */
} Reader;

/* Where split_rows is: the next record's position, the line the previous record ended on, the
 * first line of the last record read, and the payload of a record that stops the call. */
typedef struct {
    Py_ssize_t pos, line, start;
    PyObject *payload;
} Progress;

/* How a record ended (read_record and its helpers; -1 is an error): read; for the csv module; going on in the next text. */
enum { RECORD_READ = 1, RECORD_SLOW = 2, RECORD_UNFINISHED = 3 };

/* The Reader of text, with split_rows's delimiter and quote ("" for none). */
static Reader reader_of(PyObject *text, PyObject *delimiter, PyObject *quote, int final) {
    int quoting = PyUnicode_GET_LENGTH(quote) == 1;
    return (Reader){text, PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                    PyUnicode_READ_CHAR(delimiter, 0), quoting ? PyUnicode_READ_CHAR(quote, 0) : 0, quoting, final};
}

/* Whether text[i:i+2] is "\r\n". */
static inline int crlf_at(const Reader *r, Py_ssize_t i) {
    return i + 1 < r->n && PyUnicode_READ(r->kind, r->data, i) == '\r' && PyUnicode_READ(r->kind, r->data, i + 1) == '\n';
}

/* The length of the blank line at pos ("\n" or "\r\n"), or 0: a blank line is not a record. */
static inline Py_ssize_t blank_line(const Reader *r, Py_ssize_t pos) {
    if (PyUnicode_READ(r->kind, r->data, pos) == '\n')
        return 1;
    return crlf_at(r, pos) ? 2 : 0;
}

/* The quoted field at *pos (its opening quote), doubled quotes made single: 0 with *field, *pos
 * past the closing quote (at a delimiter, a line end or the text's end) and the line breaks inside
 * added to *lines; RECORD_SLOW (a carriage return inside, a character after the closing quote, no
 * closing quote in the final text); RECORD_UNFINISHED; or -1 with an error. */
static int quoted_field(const Reader *r, Py_ssize_t *pos, Py_ssize_t *lines, PyObject **field) {
    const int kind = r->kind;
    const void *data = r->data;
    const Py_UCS4 quote = r->quote;
    Py_ssize_t n = r->n, i = *pos + 1, breaks = 0;
    int doubled = 0;
    for (;; i++) {
        if (i >= n) /* no closing quote */
            return r->final ? RECORD_SLOW : RECORD_UNFINISHED;
        Py_UCS4 q = PyUnicode_READ(kind, data, i);
        if (q == quote) {
            if (i + 1 < n && PyUnicode_READ(kind, data, i + 1) == quote) {
                doubled = 1;
                i++;
                continue;
            }
            break; /* the closing quote */
        }
        if (q == '\n')
            breaks++;
        else if (q == '\r')
            return RECORD_SLOW;
    }
    Py_ssize_t after = i + 1; /* a delimiter, the line's end, or the text's end */
    if (after < n) {
        Py_UCS4 next = PyUnicode_READ(kind, data, after);
        if (next != r->delimiter && next != '\n' && !crlf_at(r, after))
            return RECORD_SLOW;
    } else if (!r->final) {
        return RECORD_UNFINISHED;
    }
    *field = unquote(r->text, kind, data, *pos + 1, i, quote, doubled);
    if (!*field)
        return -1;
    *pos = after;
    *lines += breaks;
    return 0;
}

/* The unquoted field at *pos: 0 with *field and *pos at its end (a delimiter, a line end or the
 * text's end); RECORD_SLOW (a quote character or a stray carriage return in it); RECORD_UNFINISHED;
 * or -1 with an error. */
static int plain_field(const Reader *r, Py_ssize_t *pos, PyObject **field) {
    const int kind = r->kind, quoting = r->quoting;
    const void *data = r->data;
    const Py_UCS4 delimiter = r->delimiter, quote = r->quote;
    Py_ssize_t n = r->n, i = *pos;
    Py_UCS4 f = 0;
    while (i < n) {
        f = PyUnicode_READ(kind, data, i);
        if (f == delimiter || f == '\n' || f == '\r' || (quoting && f == quote))
            break;
        i++;
    }
    if (i < n && ((quoting && f == quote) || (f == '\r' && !crlf_at(r, i))))
        return RECORD_SLOW;
    if (i >= n && !r->final)
        return RECORD_UNFINISHED;
    *field = PyUnicode_Substring(r->text, *pos, i);
    if (!*field)
        return -1;
    *pos = i;
    return 0;
}

/* Past a field's end (*pos at a delimiter, a line end or the text's end): 0 another field follows
 * (*pos past the delimiter); RECORD_READ the record ends (*pos past its line break, counted in
 * *lines; a delimiter that ends the final text adds a last, empty field); RECORD_UNFINISHED; or -1
 * with an error. */
static int after_field(const Reader *r, PyObject *fields, Py_ssize_t *pos, Py_ssize_t *lines) {
    if (*pos >= r->n)
        return RECORD_READ;
    Py_UCS4 sep = PyUnicode_READ(r->kind, r->data, *pos);
    if (sep != r->delimiter) { /* "\n" or "\r\n" */
        *pos += sep == '\r' ? 2 : 1;
        (*lines)++;
        return RECORD_READ;
    }
    if (++*pos < r->n)
        return 0;
    if (!r->final)
        return RECORD_UNFINISHED;
    return append_new(fields, PyUnicode_New(0, 0)) < 0 ? -1 : RECORD_READ; /* "a," at the very end */
}

/* The record at *pos read into fields: RECORD_READ (*pos past it, its line breaks added to *lines),
 * RECORD_SLOW, RECORD_UNFINISHED, or -1 with an error. */
static int read_record(const Reader *r, PyObject *fields, Py_ssize_t *pos, Py_ssize_t *lines) {
    for (;;) {
        PyObject *field;
        int quoted = r->quoting && *pos < r->n && PyUnicode_READ(r->kind, r->data, *pos) == r->quote;
        int got = quoted ? quoted_field(r, pos, lines, &field) : plain_field(r, pos, &field);
        if (got)
            return got;
        if (append_new(fields, field) < 0)
            return -1;
        int end = after_field(r, fields, pos, lines);
        if (end)
            return end;
    }
}

/* A record's fields typed (type_record) and appended to rows, its first line (start) to line_nos:
 * 1, DONE_WIDTH or DONE_VALUE with *payload set, or -1 with an error. Releases fields. */
static int add_row(const Columns *c, PyObject *rows, PyObject *line_nos, PyObject *fields, Py_ssize_t start, PyObject **payload) {
    int typed = type_record(c, fields, payload);
    if (typed == 1 && (PyList_Append(rows, fields) < 0 || append_new(line_nos, PyLong_FromSsize_t(start)) < 0))
        typed = -1;
    Py_DECREF(fields);
    return typed;
}

/* split_rows's loop: records from at->pos read, typed and appended until len(rows) reaches limit,
 * the text ends, or a record stops the call. How it stopped (see split_rows), or -1 with an error. */
static int read_rows(const Reader *r, const Columns *c, PyObject *rows, PyObject *line_nos, Py_ssize_t limit, Progress *at) {
    while (at->pos < r->n) {
        if (PyList_GET_SIZE(rows) >= limit)
            return DONE_FULL;
        Py_ssize_t blank = blank_line(r, at->pos);
        if (blank) {
            at->pos += blank;
            at->line++;
            continue;
        }
        Py_ssize_t record = at->pos, lines = 0;
        PyObject *fields = PyList_New(0);
        if (!fields)
            return -1;
        int outcome = read_record(r, fields, &at->pos, &lines);
        if (outcome != RECORD_READ) {
            Py_DECREF(fields);
            at->pos = record;
            return outcome < 0 ? -1 : outcome == RECORD_SLOW ? DONE_SLOW : DONE_END;
        }
        if (at->pos >= r->n && PyUnicode_READ(r->kind, r->data, r->n - 1) != '\n')
            lines++; /* the last line, without a line break */
        at->start = at->line + 1;
        at->line += lines;
        int added = add_row(c, rows, line_nos, fields, at->start, &at->payload);
        if (added != 1)
            return added;
    }
    return DONE_END;
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
    Columns c;
    if (columns_init(&c, kinds, kinds_obj, hows, null, extra_ok, optional_ok) < 0)
        return NULL;
    Reader r = reader_of(text, delimiter_obj, quote_obj, final);
    Progress at = {pos, line, line + 1, NULL};
    int done = read_rows(&r, &c, rows, line_nos, limit, &at);
    if (done < 0) {
        Py_XDECREF(at.payload);
        return NULL;
    }
    return Py_BuildValue("innnN", done, at.pos, at.line, at.start, at.payload ? at.payload : Py_NewRef(Py_None));
}

/*
 * type_fields(fields, kinds, hows, null, extra_ok, optional_ok) -> (status, payload)
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
    Columns c;
    if (columns_init(&c, kinds, kinds_obj, hows, null, extra_ok, optional_ok) < 0)
        return NULL;
    PyObject *payload = NULL;
    int status = type_record(&c, fields, &payload);
    if (status < 0)
        return NULL;
    return Py_BuildValue("iN", status, payload ? payload : Py_NewRef(Py_None));
}


/* ---- writing: rows to CSV text (the csv module's QUOTE_MINIMAL with doubled quotes, LF lines) ---- */


enum { OUT_PLAIN = 0, OUT_BOOLEAN = 1, OUT_TIMESTAMP = 2 };

/* datetime.isoformat() of a naive or UTC datetime; 0 when it is neither (the Python writer takes the batch) */
static int add_isoformat(Buffer *b, PyObject *v) {
    char text[ISOFORMAT_MAX];
    size_t n = isoformat(text, v);
    if (!n)
        return 0;
    return add(b, text, n) < 0 ? -1 : 1;
}

/* Whether a str field needs quotes (a delimiter, a quote or a line feed in it): 1, 0, or -1 for a
 * carriage return (the careful writer's case). */
static int needs_quotes(const char *s, Py_ssize_t n, char delimiter, char quote) {
    int quoted = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r')
            return -1;
        if (c == delimiter || c == quote || c == '\n')
            quoted = 1;
    }
    return quoted;
}

/* s written in quotes, its quote characters doubled: 0, or -1 with an error. */
static int add_quoted(Buffer *b, const char *s, Py_ssize_t n, char quote) {
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
    return 0;
}

/* A str field, quoted when it needs it: 1 written, 0 for the careful writer ("" or a carriage return), -1 error. */
static int add_text_field(Buffer *b, PyObject *v, char delimiter, char quote) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (!s)
        return -1;
    if (n == 0) /* "" is null_string: that row is written by the careful writer */
        return 0;
    int quoted = needs_quotes(s, n, delimiter, quote);
    if (quoted < 0)
        return 0;
    return (quoted ? add_quoted(b, s, n, quote) : add(b, s, (size_t)n)) < 0 ? -1 : 1;
}

/* A bool field: true or false in a boolean column, True or False (the csv module's) elsewhere. 1, -1 error. */
static int add_bool_field(Buffer *b, int t, int kind) {
    if (kind == OUT_BOOLEAN)
        return add(b, t ? "true" : "false", t ? 4 : 5) < 0 ? -1 : 1;
    return add(b, t ? "True" : "False", t ? 4 : 5) < 0 ? -1 : 1;
}

/* An int field: 1 written, 0 not this writer's (in a boolean column, or past 64 bits), -1 error. */
static int add_long_field(Buffer *b, PyObject *v, int kind) {
    int overflow;
    if (kind == OUT_BOOLEAN) /* 1 and 0 would be true and false there (a dict lookup): not this writer's case */
        return 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow)
        return 0;
    return add_long(b, n) < 0 ? -1 : 1;
}

/* 1 written, 0 a value this does not write (the Python writer takes the batch), -1 error */
static int add_field(Buffer *b, PyObject *v, int kind, char delimiter, char quote) {
    if (v == Py_None)
        return 1;
    if (PyUnicode_CheckExact(v))
        return add_text_field(b, v, delimiter, quote);
    if (PyBool_Check(v))
        return add_bool_field(b, v == Py_True, kind);
    if (PyLong_CheckExact(v))
        return add_long_field(b, v, kind);
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d))
            return 0;
        return add_repr(b, d) < 0 ? -1 : 1;
    }
    if (kind == OUT_TIMESTAMP && PyDateTime_CheckExact(v))
        return add_isoformat(b, v);
    return 0;
}

/* One row as a CSV line: 1 written, 0 not this writer's (another width, a value add_field does not write), -1 error. */
static int add_line(Buffer *b, PyObject *row, const int *kinds, Py_ssize_t ncols, char delimiter, char quote) {
    PyObject *seq = PySequence_Fast(row, "rows must be sequences");
    if (!seq)
        return -1;
    PyObject **values = PySequence_Fast_ITEMS(seq);
    int done = PySequence_Fast_GET_SIZE(seq) == ncols;
    for (Py_ssize_t i = 0; done == 1 && i < ncols; i++)
        done = (i && add(b, &delimiter, 1) < 0) ? -1 : add_field(b, values[i], kinds[i], delimiter, quote);
    Py_DECREF(seq);
    if (done == 1 && add(b, "\n", 1) < 0)
        return -1;
    return done;
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
    int done = 1;
    for (Py_ssize_t r = 0; done == 1 && r < n; r++)
        done = add_line(&b, PyList_GET_ITEM(rows, r), kinds, ncols, (char)delimiter, (char)quote);
    PyObject *out = done < 0 ? NULL : done == 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(b.data ? b.data : "", (Py_ssize_t)b.len);
    PyMem_Free(b.data);
    return out;
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

/* Past white space, the character ch skipped: 1, or 0 when ch is not next. */
static int take(Cursor *c, unsigned char ch) {
    skip_space(c);
    if (c->p >= c->end || *c->p != ch)
        return 0;
    c->p++;
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

/* UTF-8 bytes as a str, or NULL: with no error set when they are not UTF-8 (bail), or with an error. */
static PyObject *decode_utf8(const char *s, Py_ssize_t n) {
    PyObject *v = PyUnicode_DecodeUTF8(s, n, "strict");
    if (!v && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        PyErr_Clear();
    return v;
}

/* The byte a one-character escape stands for (ch: the character after the backslash), or 0 for none. */
static char simple_escape(unsigned char ch) {
    switch (ch) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return 0;
    }
}

/* The code point of the \uXXXX escape whose 'u' is at s[*i] (a surrogate pair's two escapes as one):
 * 1 with *cp and *i at its last hex digit, or 0 (bail: not hex, a lone surrogate). */
static int unicode_escape(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i, unsigned *cp) {
    Py_ssize_t at = *i;
    if (at + 4 >= n || !hex4(s + at + 1, cp))
        return 0;
    at += 4;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) { /* a surrogate pair, or bail */
        unsigned low;
        if (at + 6 >= n || s[at + 1] != '\\' || s[at + 2] != 'u' || !hex4(s + at + 3, &low) || low < 0xDC00 || low > 0xDFFF)
            return 0;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
        at += 6;
    } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
        return 0;
    }
    *i = at;
    return 1;
}

/* cp as UTF-8 at out: how many bytes (at most 4, never more than the 6 escape bytes it replaces). */
static Py_ssize_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* s[0:n] with its escapes made the bytes they stand for, into out (n bytes at most): the length,
 * or -1 (bail: an escape orjson refuses). */
static Py_ssize_t unescape(const unsigned char *s, Py_ssize_t n, char *out) {
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = (char)s[i];
            continue;
        }
        if (++i >= n)
            return -1;
        char simple = simple_escape(s[i]);
        unsigned cp;
        if (simple)
            out[o++] = simple;
        else if (s[i] == 'u' && unicode_escape(s, n, &i, &cp))
            o += put_utf8(out + o, cp);
        else
            return -1;
    }
    return o;
}

/* The str of a scanned JSON string, or NULL with no error set (bail), or NULL with an error. */
static PyObject *string_value(const unsigned char *s, Py_ssize_t n, int escaped) {
    if (!escaped)
        return decode_utf8((const char *)s, n);
    char small[256] = {0}, *out = n <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc((size_t)n);
    if (!out)
        return PyErr_NoMemory();
    Py_ssize_t len = unescape(s, n, out);
    PyObject *v = len < 0 ? NULL : decode_utf8(out, len);
    if (out != small)
        PyMem_Free(out);
    return v;
}

/* The JSON string at c->p (its opening quote), skipped: its str, or NULL with no error set (bail), or NULL with an error. */
static PyObject *string_at(Cursor *c) {
    const unsigned char *s;
    Py_ssize_t n;
    int escaped;
    if (!scan_string(c, &s, &n, &escaped))
        return NULL;
    return string_value(s, n, escaped);
}

/* Whether ch is an ASCII digit. */
static inline int is_digit(unsigned char ch) {
    return ch >= '0' && ch <= '9';
}

/* Past the digits from p. */
static const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end) {
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* The end of the JSON number at p, or NULL (bail: not JSON's grammar); *is_float: it has a fraction or an exponent. */
static const unsigned char *number_end(const unsigned char *p, const unsigned char *end, int *is_float) {
    *is_float = 0;
    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return NULL;
    p = *p == '0' ? p + 1 : skip_digits(p, end);
    if (p < end && *p == '.') {
        *is_float = 1;
        if (++p >= end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_float = 1;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
    }
    return p;
}

/* The float of a JSON number's text: 1 with *out, 0 bail (out of range), -1 error. */
static int float_value(const char *text, PyObject **out) {
    double d = PyOS_string_to_double(text, NULL, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return BAIL;
    }
    if (!isfinite(d))
        return BAIL;
    *out = PyFloat_FromDouble(d);
    return *out ? 1 : -1;
}

/* A JSON number at c->p: 1 with *out (int or float), 0 bail, -1 error. */
static int number_value(Cursor *c, PyObject **out) {
    int is_float;
    const unsigned char *start = c->p, *end = number_end(start, c->end, &is_float);
    if (!end)
        return BAIL;
    Py_ssize_t n = end - start;
    char text[64];
    if (n >= (Py_ssize_t)sizeof text)
        return BAIL;
    memcpy(text, start, (size_t)n);
    text[n] = '\0';
    c->p = end;
    if (is_float)
        return float_value(text, out);
    if (n - (text[0] == '-') > 18)
        return BAIL;
    *out = PyLong_FromLongLong(strtoll(text, NULL, 10));
    return *out ? 1 : -1;
}

/* The literal null, true or false at c->p, skipped: Py_None, Py_True or Py_False (borrowed), or NULL (bail: none of them). */
static PyObject *literal(Cursor *c) {
    unsigned char ch = *c->p;
    const char *word = ch == 'n' ? "null" : ch == 't' ? "true" : ch == 'f' ? "false" : NULL;
    Py_ssize_t n = ch == 'f' ? 5 : 4;
    if (!word || c->end - c->p < n || memcmp(c->p, word, (size_t)n))
        return NULL;
    c->p += n;
    return ch == 'n' ? Py_None : ch == 't' ? Py_True : Py_False;
}

/* A string's value for a string column, or how(text) for a timestamp column: 1 with *out, 0 bail
 * (not a string orjson reads, a timestamp that does not convert), -1 error. */
static int string_column_value(Cursor *c, int kind, PyObject *how, PyObject **out) {
    PyObject *text = string_at(c);
    if (!text)
        return PyErr_Occurred() ? -1 : BAIL;
    if (kind == IN_STRING) {
        *out = text;
        return 1;
    }
    *out = PyObject_CallOneArg(how, text);
    Py_DECREF(text);
    if (*out)
        return 1;
    return not_convertible(0) ? BAIL : -1;
}

/* A number's value for a long or double column (an int made a float in a double column): 1 with
 * *out, 0 bail (a float in a long column), -1 error. */
static int number_column_value(Cursor *c, int kind, PyObject **out) {
    PyObject *number;
    int got = number_value(c, &number);
    if (got <= 0)
        return got;
    int is_long = PyLong_CheckExact(number);
    if (kind == IN_LONG && !is_long) {
        Py_DECREF(number);
        return BAIL;
    }
    if (kind == IN_DOUBLE && is_long) {
        double d = PyLong_AsDouble(number);
        Py_DECREF(number);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        number = PyFloat_FromDouble(d);
        if (!number)
            return -1;
    }
    *out = number;
    return 1;
}

/* One value for a column of `kind`: 1 with *out (a new reference), 0 bail, -1 error. */
static int column_value(Cursor *c, int kind, PyObject *how, PyObject **out) {
    unsigned char ch = *c->p;
    if (ch == '"')
        return kind == IN_STRING || kind == IN_TIMESTAMP ? string_column_value(c, kind, how, out) : BAIL;
    if (ch == '-' || is_digit(ch))
        return kind == IN_LONG || kind == IN_DOUBLE ? number_column_value(c, kind, out) : BAIL;
    PyObject *word = literal(c); /* null for any column; true and false for a boolean one */
    if (!word || (word != Py_None && kind != IN_BOOLEAN))
        return BAIL; /* an object or an array too */
    *out = Py_NewRef(word);
    return 1;
}

/* Skips a JSON string that orjson would read (valid escapes and UTF-8): 1 ok, 0 bail. */
static int valid_string(Cursor *c) {
    PyObject *text = string_at(c);
    if (!text) {
        PyErr_Clear();
        return BAIL;
    }
    Py_DECREF(text);
    return 1;
}

/* Skips any JSON value (of a key that is not a column): only scalars; 1 ok, 0 bail. */
static int skip_value(Cursor *c) {
    unsigned char ch = *c->p;
    if (ch == '"')
        return valid_string(c);
    if (ch == 'n' || ch == 't' || ch == 'f')
        return literal(c) != NULL;
    PyObject *ignored = NULL;
    int got = number_value(c, &ignored);
    Py_XDECREF(ignored);
    if (got < 0)
        PyErr_Clear();
    return got > 0;
}

/* json_rows's columns: their kinds, UTF-8 names (and the names' lengths) and hows. */
typedef struct {
    Py_ssize_t ncols;
    int *kinds;
    const char **names;
    Py_ssize_t *name_lens;
    PyObject *hows;
} JsonColumns;

/* kinds_obj and names read into cols: 0, or -1 with a TypeError. */
static int read_json_columns(JsonColumns *cols, PyObject *names, PyObject *kinds_obj) {
    for (Py_ssize_t i = 0; i < cols->ncols; i++) {
        cols->kinds[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if ((cols->kinds[i] == -1 && PyErr_Occurred()) || !PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "kinds are ints and names bytes");
            return -1;
        }
        cols->names[i] = PyBytes_AS_STRING(name);
        cols->name_lens[i] = PyBytes_GET_SIZE(name);
    }
    return 0;
}

/* The column named key[0:key_len], or -1. */
static Py_ssize_t find_column(const JsonColumns *cols, const unsigned char *key, Py_ssize_t key_len) {
    for (Py_ssize_t i = 0; i < cols->ncols; i++)
        if (cols->name_lens[i] == key_len && memcmp(cols->names[i], key, (size_t)key_len) == 0)
            return i;
    return -1;
}

/* One "name": value member of an object into its column of row (a value of another key only
 * checked): 1, 0 bail, -1 error. */
static int read_member(Cursor *c, const JsonColumns *cols, PyObject *row) {
    const unsigned char *key;
    Py_ssize_t key_len;
    int escaped;
    skip_space(c);
    if (c->p >= c->end || *c->p != '"' || !scan_string(c, &key, &key_len, &escaped) || escaped || !take(c, ':'))
        return BAIL;
    skip_space(c);
    if (c->p >= c->end)
        return BAIL;
    Py_ssize_t column = find_column(cols, key, key_len);
    if (column < 0) {
        Cursor name = {key - 1, key + key_len + 1};
        return valid_string(&name) && skip_value(c);
    }
    PyObject *item;
    int got = column_value(c, cols->kinds[column], PyTuple_GET_ITEM(cols->hows, column), &item);
    if (got > 0)
        PyList_SetItem(row, column, item);
    return got;
}

/* A flat JSON object, with nothing but white space around it, into row: 1, 0 bail, -1 error. */
static int read_object(Cursor *c, const JsonColumns *cols, PyObject *row) {
    if (!take(c, '{'))
        return BAIL;
    if (!take(c, '}')) {
        do {
            int got = read_member(c, cols, row);
            if (got <= 0)
                return got;
        } while (take(c, ','));
        if (!take(c, '}'))
            return BAIL;
    }
    skip_space(c);
    return c->p == c->end;
}

/* rows[r] set to the row of one JSON value (bytes): its columns in order, None where a key is
 * missing. 1, 0 bail, -1 error. */
static int json_row(PyObject *value, const JsonColumns *cols, PyObject *rows, Py_ssize_t r) {
    if (!PyBytes_Check(value))
        return BAIL;
    PyObject *row = PyList_New(cols->ncols);
    if (!row)
        return -1;
    PyList_SET_ITEM(rows, r, row);
    for (Py_ssize_t i = 0; i < cols->ncols; i++)
        PyList_SET_ITEM(row, i, Py_NewRef(Py_None));
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(value);
    Cursor c = {s, s + PyBytes_GET_SIZE(value)};
    return read_object(&c, cols, row);
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
    JsonColumns cols = {ncols, kinds, name_text, name_len, hows};
    if (read_json_columns(&cols, names, kinds_obj) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *rows = PyList_New(n);
    if (!rows)
        return NULL;
    for (Py_ssize_t r = 0; r < n; r++) {
        int got = json_row(PyList_GET_ITEM(values, r), &cols, rows, r);
        if (got <= 0) {
            Py_DECREF(rows);
            if (got < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    return rows;
}

/* ---- CSV text straight to Kafka records (key, JSON value), with no Python object per row ---- */

enum { ENC_STRING = 0, ENC_LONG = 1, ENC_DOUBLE = 2, ENC_BOOLEAN = 3, ENC_TIMESTAMP = 4 };
enum { DONE_ODD = 2, DONE_NOT_ASCII = 5 };

typedef struct {
    const char *text;
    Py_ssize_t len;
    int value;
} Word;


/* A piece of encode_records's JSON value: its '"name":' bytes, then a column's value or a constant's JSON.
 * For an Avro value, a field: the column's value written as avro_code (see encode_records), after
 * the union branch of null or of the value (-1: none), or the constant's Avro bytes. */
typedef struct {
    const char *name, *constant; /* constant: NULL for a column's value */
    Py_ssize_t name_len, constant_len, column;
    int avro_code, null_branch, value_branch;
} Part;

/* The Avro types an Avro value's fields are written as (numbered as pipelines/native/_avrowrite.c does). */
enum { AVRO_STRING = 0, AVRO_LONG = 1, AVRO_INT = 2, AVRO_DOUBLE = 3, AVRO_FLOAT = 4, AVRO_BOOLEAN = 5, AVRO_MICROS = 6, AVRO_MILLIS = 7 };

/* encode_records's settings (see there), read once a call. */
typedef struct {
    Py_ssize_t ncols, key_index, nwords, nparts;
    const int *kinds, *required, *in_value; /* per column: its kind; neither null nor empty; written in the value */
    const Word *words;
    const Part *parts;
    const char *null_text; /* NULL: no null_string */
    Py_ssize_t null_len;
    char delimiter;
    int quote; /* -1: none */
    const char *avro_header; /* NULL: JSON values; else Avro values after these bytes (the wire format's) */
    Py_ssize_t avro_header_len;
} Encoding;

/* The JSON of a long field as the converters + orjson write it: [+-]digits, at most 18 digits. 1, 0 odd. */
static int enc_long(Buffer *b, const char *s, Py_ssize_t n) {
    long long v;
    if (!plain_long(s, n, &v))
        return 0;
    return add_long(b, v) < 0 ? -1 : 1;
}

/* A plain decimal, [+-]digits[.digits]: where its integer digits are, without leading zeros, and its
 * fraction's, without trailing zeros. */
typedef struct {
    int negative;
    Py_ssize_t int_start, int_end, frac_start, frac_end;
} Decimal;

/* s[0:n] as a Decimal: 1, or 0 when it is not [+-]digits[.digits] with at least one digit. */
static int read_decimal(const char *s, Py_ssize_t n, Decimal *d) {
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
    *d = (Decimal){negative, int_start, int_end, frac_start, frac_end};
    return 1;
}

/* Whether repr(float) writes the decimal as its digits stand: at most 15 significant digits, and
 * 1e-4 or more (or zero). */
static int repr_is_plain(const char *s, const Decimal *d) {
    Py_ssize_t int_digits = d->int_end - d->int_start, frac_digits = d->frac_end - d->frac_start;
    Py_ssize_t significant = int_digits + frac_digits;
    if (int_digits == 0 && frac_digits > 0) {
        Py_ssize_t zeros = 0;
        while (s[d->frac_start + zeros] == '0')
            zeros++;
        if (zeros > 3)
            return 0; /* below 1e-4: repr writes an exponent */
        significant -= zeros;
    }
    return int_digits <= 15 && significant <= 15;
}

/* s[start:end] copied to p, or "0" when it is empty: past what was written. */
static char *put_digits(char *p, const char *s, Py_ssize_t start, Py_ssize_t end) {
    if (end == start) {
        *p++ = '0';
        return p;
    }
    memcpy(p, s + start, (size_t)(end - start));
    return p + (end - start);
}

/* The decimal as repr writes it: [-]digits.digits. 1, -1 error. */
static int add_decimal(Buffer *b, const char *s, const Decimal *d) {
    if (grow(b, (size_t)(d->int_end - d->int_start + d->frac_end - d->frac_start + 4)) < 0)
        return -1;
    char *p = b->data + b->len;
    if (d->negative)
        *p++ = '-';
    p = put_digits(p, s, d->int_start, d->int_end);
    *p++ = '.';
    p = put_digits(p, s, d->frac_start, d->frac_end);
    b->len = (size_t)(p - b->data);
    return 1;
}

/* A double field as repr(float(text)) (= orjson) writes it, for plain decimals ([+-]digits[.digits])
 * of at most 15 significant digits between 1e-4 and 1e15 (or zero): the shortest text that reads
 * back as the same double is then the decimal itself, trimmed. 1, 0 odd. */
static int enc_double(Buffer *b, const char *s, Py_ssize_t n) {
    Decimal d;
    if (!read_decimal(s, n, &d) || !repr_is_plain(s, &d))
        return 0;
    return add_decimal(b, s, &d);
}

static int two(const char *s, int *out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* A timestamp field (no format) that datetime.fromisoformat + UTC read as the Python path does:
 * YYYY-MM-DDTHH:MM:SS with nothing, Z or +00:00 after. 1 with its seconds since the epoch, 0 odd. */
static int plain_timestamp(const char *s, Py_ssize_t n, long long *epoch_seconds) {
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
    *epoch_seconds = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hour * 3600 + minute * 60 + second;
    return 1;
}

/* A timestamp field (no format) as datetime.fromisoformat + UTC + isoformat() write it:
 * "...+00:00" (see plain_timestamp). 1, 0 odd, -1 error. */
static int enc_timestamp(Buffer *b, const char *s, Py_ssize_t n) {
    long long seconds;
    if (!plain_timestamp(s, n, &seconds))
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

/* A boolean field as its word's value: true or false. 1, 0 odd (not one of the words), -1 error. */
static int enc_boolean(Buffer *b, const char *s, Py_ssize_t n, const Word *words, Py_ssize_t nwords) {
    for (Py_ssize_t w = 0; w < nwords; w++)
        if (words[w].len == n && memcmp(words[w].text, s, (size_t)n) == 0)
            return (words[w].value ? add(b, "true", 4) : add(b, "false", 5)) < 0 ? -1 : 1;
    return 0;
}

/* Whether a field is the null_string (none when e->null_text is NULL). */
static int is_null(const Encoding *e, const char *s, Py_ssize_t len) {
    return e->null_text && len == e->null_len && memcmp(s, e->null_text, (size_t)len) == 0;
}

/* Whether a field is empty or the null_string. */
static int empty_or_null(const Encoding *e, const char *s, Py_ssize_t len) {
    return len == 0 || is_null(e, s, len);
}

/* One field's JSON as the Python path writes it: 1 written, 0 odd, -1 error. */
static int enc_value(Buffer *b, const Encoding *e, const char *s, Py_ssize_t len, int kind) {
    if (is_null(e, s, len) || (len == 0 && kind != ENC_STRING))
        return add(b, "null", 4) < 0 ? -1 : 1;
    switch (kind) {
    case ENC_STRING:
        return enc_string(b, s, len);
    case ENC_LONG:
        return enc_long(b, s, len);
    case ENC_DOUBLE:
        return enc_double(b, s, len);
    case ENC_BOOLEAN:
        return enc_boolean(b, s, len, e->words, e->nwords);
    case ENC_TIMESTAMP:
        return enc_timestamp(b, s, len);
    default:
        return 0;
    }
}

/* required (column indexes) as a flag a column, into required[ncols]: 0, or -1 with an error. */
static int read_required(PyObject *required_obj, Py_ssize_t ncols, int *required) {
    for (Py_ssize_t i = 0; i < ncols; i++)
        required[i] = 0;
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(required_obj); r++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(required_obj, r));
        if (i < 0 || i >= ncols) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "encode_records: a required column is out of range");
            return -1;
        }
        required[i] = 1;
    }
    return 0;
}

/* booleans ((word, value) pairs) into words: 0, or -1 with an error. */
static int read_words(PyObject *booleans, Word *words) {
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(booleans); w++) {
        PyObject *pair = PyTuple_GET_ITEM(booleans, w);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "encode_records: booleans are (word, value) pairs");
            return -1;
        }
        words[w].text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &words[w].len);
        words[w].value = PyObject_IsTrue(PyTuple_GET_ITEM(pair, 1));
        if (!words[w].text || words[w].value < 0)
            return -1;
    }
    return 0;
}

/* One of parts, (name bytes, column index or constant bytes), into *part: 0, or -1 with an error. */
static int read_part(PyObject *item, Py_ssize_t ncols, Part *part) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
        PyErr_SetString(PyExc_TypeError, "encode_records: parts are (name bytes, column index or constant bytes)");
        return -1;
    }
    PyObject *name = PyTuple_GET_ITEM(item, 0), *source = PyTuple_GET_ITEM(item, 1);
    *part = (Part){PyBytes_AS_STRING(name), NULL, PyBytes_GET_SIZE(name), 0, -1};
    if (PyBytes_Check(source)) {
        part->constant = PyBytes_AS_STRING(source);
        part->constant_len = PyBytes_GET_SIZE(source);
        return 0;
    }
    part->column = PyLong_AsSsize_t(source);
    if (part->column < 0 || part->column >= ncols) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "encode_records: a part's column is out of range");
        return -1;
    }
    return 0;
}

/* parts_obj into parts, and in_value[ncols]: whether the value writes each column. 0, or -1 with an error. */
static int read_parts(PyObject *parts_obj, Py_ssize_t ncols, Part *parts, int *in_value) {
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts_obj); j++)
        if (read_part(PyTuple_GET_ITEM(parts_obj, j), ncols, &parts[j]) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < ncols; i++)
        in_value[i] = 0;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts_obj); j++)
        if (parts[j].column >= 0)
            in_value[parts[j].column] = 1;
    return 0;
}

/* avro (None: JSON values; or (header bytes, ((avro_code, null_branch, value_branch), ...)), one
 * per part) into the parts and e: 0, or -1 with an error. */
static int read_avro(PyObject *avro, Part *parts, Py_ssize_t nparts, Encoding *e) {
    PyObject *codes;
    if (avro == Py_None)
        return 0;
    if (!PyArg_ParseTuple(avro, "y#O!:encode_records avro", &e->avro_header, &e->avro_header_len, &PyTuple_Type, &codes))
        return -1;
    if (PyTuple_GET_SIZE(codes) != nparts) {
        PyErr_SetString(PyExc_ValueError, "encode_records: one Avro code a part");
        return -1;
    }
    for (Py_ssize_t j = 0; j < nparts; j++) {
        Part *p = &parts[j];
        PyObject *item = PyTuple_GET_ITEM(codes, j);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "iii", &p->avro_code, &p->null_branch, &p->value_branch))
            return -1;
        if (p->avro_code < AVRO_STRING || p->avro_code > AVRO_MILLIS) {
            PyErr_SetString(PyExc_ValueError, "encode_records: unknown Avro code");
            return -1;
        }
    }
    return 0;
}

/* null (a str, or None) as UTF-8 into *text and *len (*text NULL for None): 0, or -1. */
static int read_null(PyObject *null, const char **text, Py_ssize_t *len) {
    *text = NULL;
    *len = 0;
    if (null == Py_None)
        return 0;
    if (!PyUnicode_Check(null) || !(*text = PyUnicode_AsUTF8AndSize(null, len)))
        return -1;
    return 0;
}

/* How split_line found the record at pos: cut into fields; going on in the next text; not plain. */
enum { LINE_SPLIT, LINE_UNFINISHED, LINE_ODD };

/* The record at pos cut into e->ncols fields (starts, ends) with *eol at its line end, if it is
 * plain: on one line, with no quote character or stray carriage return, as many fields as columns. */
static int split_line(const Encoding *e, const char *data, Py_ssize_t n, Py_ssize_t pos, int final, Py_ssize_t *starts,
                      Py_ssize_t *ends, Py_ssize_t *eol) {
    const char delimiter = e->delimiter;
    const int quote = e->quote;
    const Py_ssize_t ncols = e->ncols;
    Py_ssize_t i = pos, width = 0;
    starts[0] = pos;
    for (;; i++) {
        if (i >= n) {
            if (!final)
                return LINE_UNFINISHED; /* the record goes on in the next text */
            break;
        }
        char c = data[i];
        if (c == delimiter) {
            if (width + 1 >= ncols)
                return LINE_ODD; /* too many fields */
            ends[width++] = i;
            starts[width] = i + 1;
        } else if (c == '\n') {
            break;
        } else if (c == '\r') {
            if (i + 1 < n && data[i + 1] == '\n')
                break;
            return i + 1 >= n && !final ? LINE_UNFINISHED : LINE_ODD;
        } else if (c == quote) {
            return LINE_ODD;
        }
    }
    if (width + 1 != ncols)
        return LINE_ODD;
    ends[width] = *eol = i;
    return LINE_SPLIT;
}

/* Whether a required column of the split record is empty or null. */
static int misses_required(const Encoding *e, const char *data, const Py_ssize_t *starts, const Py_ssize_t *ends) {
    for (Py_ssize_t r = 0; r < e->ncols; r++)
        if (e->required[r] && empty_or_null(e, data + starts[r], ends[r] - starts[r]))
            return 1;
    return 0;
}

/* A double or float field's value as float(text) reads it, for plain decimals: 1, 0 odd. */
static int avro_real(const char *s, Py_ssize_t n, int code, double *out) {
    Decimal d;
    char text[64];
    if (n >= (Py_ssize_t)sizeof text || !read_decimal(s, n, &d))
        return 0;
    memcpy(text, s, (size_t)n);
    text[n] = 0;
    *out = PyOS_string_to_double(text, NULL, NULL);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return code == AVRO_DOUBLE || !isinf((float)*out); /* struct.pack('<f') refuses what a float cannot hold */
}

/* A non-null field's value as its Avro type: 1, 0 odd, -1 error. */
static int enc_avro_typed(Buffer *b, const Encoding *e, const Part *part, const char *s, Py_ssize_t n) {
    long long v;
    double d;
    switch (part->avro_code) {
    case AVRO_STRING:
        return add_avro_long(b, n) < 0 || add(b, s, (size_t)n) < 0 ? -1 : 1;
    case AVRO_LONG:
    case AVRO_INT:
        if (!plain_long(s, n, &v) || (part->avro_code == AVRO_INT && (v < INT32_MIN || v > INT32_MAX)))
            return 0;
        return add_avro_long(b, v) < 0 ? -1 : 1;
    case AVRO_DOUBLE:
    case AVRO_FLOAT: {
        if (!avro_real(s, n, part->avro_code, &d))
            return 0;
        float f = (float)d;
        return (part->avro_code == AVRO_DOUBLE ? add_avro_double(b, d) : add_avro_float(b, f)) < 0 ? -1 : 1;
    }
    case AVRO_BOOLEAN:
        for (Py_ssize_t w = 0; w < e->nwords; w++)
            if (e->words[w].len == n && memcmp(e->words[w].text, s, (size_t)n) == 0)
                return add(b, e->words[w].value ? "\1" : "\0", 1) < 0 ? -1 : 1;
        return 0;
    case AVRO_MICROS:
    case AVRO_MILLIS:
        if (!plain_timestamp(s, n, &v))
            return 0;
        return add_avro_long(b, v * (part->avro_code == AVRO_MICROS ? 1000000 : 1000)) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

/* One field of the split record's Avro value: its union branch, then its value. 1, 0 odd (null in
 * a field that is not nullable, a value the Python path reads otherwise), -1 error. */
static int enc_avro_field(Buffer *b, const Encoding *e, const Part *part, const char *s, Py_ssize_t n, int kind) {
    if (is_null(e, s, n) || (n == 0 && kind != ENC_STRING))
        return part->null_branch < 0 ? 0 : (add_avro_long(b, part->null_branch) < 0 ? -1 : 1);
    if (part->value_branch >= 0 && add_avro_long(b, part->value_branch) < 0)
        return -1;
    return enc_avro_typed(b, e, part, s, n);
}

/* The split record's Avro value (the header, then each field), appended to out: 1, 0 odd, -1 error. */
static int enc_avro_object(Buffer *out, const Encoding *e, const char *data, const Py_ssize_t *starts, const Py_ssize_t *ends) {
    if (add(out, e->avro_header, (size_t)e->avro_header_len) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < e->nparts; j++) {
        const Part *part = &e->parts[j];
        Py_ssize_t column = part->column;
        int ok = part->constant ? (add(out, part->constant, (size_t)part->constant_len) < 0 ? -1 : 1)
                                : enc_avro_field(out, e, part, data + starts[column], ends[column] - starts[column], e->kinds[column]);
        if (ok != 1)
            return ok;
    }
    return 1;
}

/* The split record's JSON value, {"name":value,...}, appended to out: 1, 0 odd, -1 error. */
static int enc_object(Buffer *out, const Encoding *e, const char *data, const Py_ssize_t *starts, const Py_ssize_t *ends) {
    if (e->avro_header)
        return enc_avro_object(out, e, data, starts, ends);
    if (add(out, "{", 1) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < e->nparts; j++) {
        const Part *part = &e->parts[j];
        if (add(out, part->name, (size_t)part->name_len) < 0)
            return -1;
        Py_ssize_t column = part->column;
        int ok = part->constant ? (add(out, part->constant, (size_t)part->constant_len) < 0 ? -1 : 1)
                                : enc_value(out, e, data + starts[column], ends[column] - starts[column], e->kinds[column]);
        if (ok != 1)
            return ok;
    }
    return add(out, "}", 1) < 0 ? -1 : 1;
}

/* Whether the columns the value leaves out convert all the same (as the filters read them): 1, 0 odd, -1 error. */
static int others_convert(Buffer *out, const Encoding *e, const char *data, const Py_ssize_t *starts, const Py_ssize_t *ends) {
    for (Py_ssize_t r = 0; r < e->ncols; r++) {
        if (e->in_value[r])
            continue;
        size_t mark = out->len; /* written, then taken back */
        int ok = enc_value(out, e, data + starts[r], ends[r] - starts[r], e->kinds[r]);
        out->len = mark;
        if (ok != 1)
            return ok;
    }
    return 1;
}

/* The split record appended to out: a native uint32 key length, a uint32 value length, the key,
 * the value. 1; 0 odd (an empty or null key, a missing required value, a value the Python path
 * writes otherwise), out as it was; -1 error. With no key (key_index -1), nothing is written: 1 when
 * the record would be a row that passes the filters. */
static int encode_record(Buffer *out, const Encoding *e, const char *data, const Py_ssize_t *starts, const Py_ssize_t *ends) {
    if (e->key_index < 0) /* counted only: checked as the parser and the filters check it, nothing written */
        return misses_required(e, data, starts, ends) ? 0 : others_convert(out, e, data, starts, ends);
    const char *key = data + starts[e->key_index];
    Py_ssize_t key_len = ends[e->key_index] - starts[e->key_index];
    if (empty_or_null(e, key, key_len) || misses_required(e, data, starts, ends))
        return 0;
    size_t record = out->len;
    if (grow(out, 8) < 0)
        return -1;
    out->len += 8;
    if (add(out, key, (size_t)key_len) < 0)
        return -1;
    size_t value_start = out->len;
    int ok = enc_object(out, e, data, starts, ends);
    if (ok == 1)
        ok = others_convert(out, e, data, starts, ends);
    if (ok != 1) {
        out->len = record;
        return ok;
    }
    uint32_t lengths[2] = {(uint32_t)key_len, (uint32_t)(out->len - value_start)};
    memcpy(out->data + record, lengths, 8);
    return 1;
}

/* Where encode_records is: the next record's position, the line the previous record ended on, and
 * how many records are written. */
typedef struct {
    Py_ssize_t pos, line, count;
} EncodeProgress;

/* encode_records's loop: the records of data[at->pos:n] (ASCII) into out until `limit` records,
 * the text's end, or a record it leaves: how it stopped (see encode_records), or -1 with an error. */
static int encode_lines(const Encoding *e, const char *data, Py_ssize_t n, int final, Py_ssize_t limit, Buffer *out, EncodeProgress *at) {
    Py_ssize_t starts[e->ncols], ends[e->ncols], eol;
    while (at->pos < n) {
        if (at->count >= limit)
            return DONE_FULL;
        Py_ssize_t pos = at->pos;
        if (data[pos] == '\n' || (data[pos] == '\r' && pos + 1 < n && data[pos + 1] == '\n')) { /* a blank line */
            at->pos += data[pos] == '\n' ? 1 : 2;
            at->line++;
            continue;
        }
        int split = split_line(e, data, n, pos, final, starts, ends, &eol);
        if (split != LINE_SPLIT)
            return split == LINE_UNFINISHED ? DONE_END : DONE_ODD;
        int ok = encode_record(out, e, data, starts, ends);
        if (ok <= 0)
            return ok < 0 ? -1 : DONE_ODD;
        at->count++;
        at->line++;
        at->pos = eol >= n ? n : eol + (data[eol] == '\r' ? 2 : 1);
    }
    return DONE_END;
}

/* encode_records's result for text[pos:]: its loop's, with the records written. */
static PyObject *encode_text(const Encoding *e, PyObject *text, Py_ssize_t pos, int final, Py_ssize_t limit, Py_ssize_t line) {
    Buffer out = {NULL, 0, 0};
    EncodeProgress at = {pos, line, 0};
    int done = encode_lines(e, (const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), final, limit, &out, &at);
    PyObject *result = NULL;
    if (done >= 0)
        result = Py_BuildValue("innny#", done, at.pos, at.line, at.count, out.data ? out.data : "", (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return result;
}

/*
 * encode_records(text, pos, final, limit, line, kinds, booleans, null, delimiter, quote, key_index,
 *                required, parts[, avro]) -> (done, pos, line, count, data)
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
 *
 * With key_index -1 (and no parts), records are only counted: those that would be rows passing the
 * filters (every field converts, no required one is missing) are, and nothing is written (the null
 * output's path).
 *
 * With `avro` = (header, codes), the values are Avro records in the Confluent wire format instead:
 * `header` (magic byte and schema id), then each part in the record schema's order, its name
 * unused: a constant's Avro bytes, or the column's value written as codes[j] = (avro_code,
 * null_branch, value_branch), as pipelines/native/_avrowrite.c writes a row's (0 string, 1 long,
 * 2 int, 3 double, 4 float, 5 boolean, 6 timestamp-micros, 7 timestamp-millis).
 */
static PyObject *encode_records(PyObject *self, PyObject *args) {
    PyObject *text, *kinds_obj, *booleans, *null, *delimiter_obj, *quote_obj, *required_obj, *parts_obj, *avro = Py_None;
    Py_ssize_t pos, limit, line, key_index;
    int final;
    if (!PyArg_ParseTuple(args, "UnpnnO!O!OUUnO!O!|O:encode_records", &text, &pos, &final, &limit, &line, &PyTuple_Type,
                          &kinds_obj, &PyTuple_Type, &booleans, &null, &delimiter_obj, &quote_obj, &key_index,
                          &PyTuple_Type, &required_obj, &PyTuple_Type, &parts_obj, &avro))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj), nparts = PyTuple_GET_SIZE(parts_obj), nwords = PyTuple_GET_SIZE(booleans);
    if (ncols < 1 || key_index < -1 || key_index >= ncols || PyUnicode_GET_LENGTH(delimiter_obj) != 1 ||
        PyUnicode_GET_LENGTH(quote_obj) > 1) {
        PyErr_SetString(PyExc_ValueError, "encode_records: bad column settings");
        return NULL;
    }
    /* a delimiter past ASCII never occurs in an ASCII text: nothing would split */
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_READ_CHAR(delimiter_obj, 0) > 127)
        return Py_BuildValue("innny#", DONE_NOT_ASCII, pos, line, (Py_ssize_t)0, "", (Py_ssize_t)0);
    int kinds[ncols], required[ncols], in_value[ncols], typed;
    Word words[nwords > 0 ? nwords : 1];
    Part parts[nparts > 0 ? nparts : 1];
    Encoding e = {ncols, key_index, nwords, nparts, kinds, required, in_value, words, parts, NULL, 0,
                  (char)PyUnicode_READ_CHAR(delimiter_obj, 0),
                  PyUnicode_GET_LENGTH(quote_obj) == 1 ? (int)PyUnicode_READ_CHAR(quote_obj, 0) : -1};
    if (read_kinds(kinds_obj, kinds, ncols, &typed) < 0 || read_required(required_obj, ncols, required) < 0 ||
        read_words(booleans, words) < 0 || read_parts(parts_obj, ncols, parts, in_value) < 0 ||
        read_null(null, &e.null_text, &e.null_len) < 0 || read_avro(avro, parts, nparts, &e) < 0)
        return NULL;
    return encode_text(&e, text, pos, final, limit, line);
}

/* ---- JSON lines straight to Kafka records, as encode_records does for CSV ---- */

/* A JSON line's field for a column that is null or missing: a byte no JSON string holds raw. */
static const char JSON_NULL_FIELD[] = "\x01";

/* encode_json_records's settings: the records' (an Encoding whose null text is JSON_NULL_FIELD), and
 * the columns' UTF-8 names. */
typedef struct {
    Encoding e;
    const char **names;
    Py_ssize_t *name_lens;
} JsonEncoding;

/* The column named key[0:len], or -1. */
static Py_ssize_t json_column(const JsonEncoding *j, const unsigned char *key, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < j->e.ncols; i++)
        if (j->name_lens[i] == len && memcmp(j->names[i], key, (size_t)len) == 0)
            return i;
    return -1;
}

/* The scalar at c->p, skipped, as the text a CSV field of its column would hold: a string's content
 * (no escapes), a number's or true's/false's text, NULL for null. 1 with *text and *len; 0 odd (an
 * escape, a nested value, a value of the wrong JSON type for a column of `kind`, or for kind -1 (no
 * column) anything but a scalar). */
static int json_token(Cursor *c, int kind, const unsigned char **text, Py_ssize_t *len) {
    int escaped, is_float;
    unsigned char ch = *c->p;
    *text = NULL;
    *len = 1;
    if (ch == '"') {
        if (!scan_string(c, text, len, &escaped) || escaped)
            return 0;
        return kind < 0 || kind == ENC_STRING || (kind == ENC_TIMESTAMP && *len > 0);
    }
    if (ch == 'n' || ch == 't' || ch == 'f') {
        const unsigned char *start = c->p;
        if (!literal(c))
            return 0;
        if (ch != 'n')
            *text = start, *len = c->p - start;
        return ch == 'n' || kind < 0 || kind == ENC_BOOLEAN;
    }
    const unsigned char *end = number_end(c->p, c->end, &is_float);
    if (!end)
        return 0;
    *text = c->p, *len = end - c->p;
    c->p = end;
    return kind < 0 || kind == ENC_LONG || kind == ENC_DOUBLE;
}

/* One "name": value member of the line's object: its value's text into the column's field. 1, 0 odd. */
static int json_member(Cursor *c, const JsonEncoding *j, const unsigned char **fields, Py_ssize_t *lens) {
    const unsigned char *key, *text;
    Py_ssize_t key_len, len;
    int escaped;
    skip_space(c);
    if (c->p >= c->end || *c->p != '"' || !scan_string(c, &key, &key_len, &escaped) || escaped || !take(c, ':'))
        return 0;
    skip_space(c);
    if (c->p >= c->end)
        return 0;
    Py_ssize_t column = json_column(j, key, key_len);
    if (!json_token(c, column < 0 ? -1 : j->e.kinds[column], &text, &len))
        return 0;
    if (column >= 0)
        fields[column] = text, lens[column] = len; /* a key given twice: the last, as in a dict */
    return 1;
}

/* The flat JSON object on the line c holds (nothing but white space around it): each column's text
 * into fields/lens (NULL: null or missing). 1, 0 odd. */
static int json_line_fields(Cursor *c, const JsonEncoding *j, const unsigned char **fields, Py_ssize_t *lens) {
    for (Py_ssize_t i = 0; i < j->e.ncols; i++)
        fields[i] = NULL, lens[i] = 1;
    if (!take(c, '{'))
        return 0;
    if (!take(c, '}')) {
        do {
            if (!json_member(c, j, fields, lens))
                return 0;
        } while (take(c, ','));
        if (!take(c, '}'))
            return 0;
    }
    skip_space(c);
    return c->p == c->end;
}

/* The line's fields laid out in `scratch` as a split CSV record (a null one as JSON_NULL_FIELD),
 * then encoded into out by encode_record: 1, 0 odd, -1 error. */
static int encode_json_line(Buffer *out, Buffer *scratch, const JsonEncoding *j, const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t ncols = j->e.ncols, starts[ncols], ends[ncols], lens[ncols];
    const unsigned char *fields[ncols];
    Cursor c = {s, s + n};
    if (!json_line_fields(&c, j, fields, lens))
        return 0;
    scratch->len = 0;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        starts[i] = (Py_ssize_t)scratch->len;
        if (add(scratch, fields[i] ? (const char *)fields[i] : JSON_NULL_FIELD, (size_t)lens[i]) < 0)
            return -1;
        ends[i] = (Py_ssize_t)scratch->len;
    }
    return encode_record(out, &j->e, scratch->data, starts, ends);
}

/* Whether s[0:n] is nothing but JSON white space (a blank line: no row). */
static int blank_json_line(const unsigned char *s, Py_ssize_t n) {
    Cursor c = {s, s + n};
    skip_space(&c);
    return c.p == c.end;
}

/* encode_json_records's loop: the lines of data[at->pos:n] into out until `limit` records, the
 * data's end, or a line it leaves: DONE_FULL, DONE_END, DONE_ODD, or -1 with an error. */
static int encode_json_lines(const JsonEncoding *j, const unsigned char *data, Py_ssize_t n, Py_ssize_t limit, Buffer *out,
                             EncodeProgress *at) {
    Buffer scratch = {NULL, 0, 0};
    int done = DONE_END;
    while (at->pos < n) {
        if (at->count >= limit) {
            done = DONE_FULL;
            break;
        }
        const unsigned char *line = data + at->pos, *eol = memchr(line, '\n', (size_t)(n - at->pos));
        Py_ssize_t len = eol ? eol - line : n - at->pos;
        int ok = blank_json_line(line, len) ? 2 : encode_json_line(out, &scratch, j, line, len);
        if (ok <= 0) {
            done = ok < 0 ? -1 : DONE_ODD;
            break;
        }
        at->count += ok == 1;
        at->line++;
        at->pos += len + (eol != NULL);
    }
    PyMem_Free(scratch.data);
    return done;
}

/* names (a tuple of bytes, one a column) into j's names and lengths: 0, or -1 with a TypeError. */
static int read_json_names(PyObject *names, JsonEncoding *j) {
    for (Py_ssize_t i = 0; i < j->e.ncols; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "encode_json_records: names are bytes");
            return -1;
        }
        j->names[i] = PyBytes_AS_STRING(name);
        j->name_lens[i] = PyBytes_GET_SIZE(name);
    }
    return 0;
}

/*
 * encode_json_records(data, pos, limit, line, kinds, names, key_index, required, parts[, avro])
 *     -> (done, pos, line, count, records)
 *
 * encode_records for JSON lines: each line of data[pos:] (UTF-8 bytes, lines ended by "\n", the
 * last maybe not) holding a flat JSON object becomes the record the jsonl parser's row (orjson,
 * then the columns' converters; a missing key or null is None), the validate and add_columns
 * filters and the Kafka output would make of it. names are the columns' UTF-8 names; kinds,
 * key_index, required, parts and avro as encode_records's. A blank line is skipped (counted).
 *
 * Only lines that come out exactly as on the Python path are written. A line holding an escape,
 * a nested value, a value of another JSON type than its column's (a number in a string column, a
 * string in a long one, an empty string in a timestamp one), an empty key or required value, or
 * a value out of the ordinary ends the call: done 2, pos at the line's start, line before it; the
 * caller reads it the usual way. Otherwise done 0: count reached limit; 1: data is read.
 */
static PyObject *encode_json_records(PyObject *self, PyObject *args) {
    PyObject *kinds_obj, *names, *required_obj, *parts_obj, *avro = Py_None;
    const char *data;
    Py_ssize_t n, pos, limit, line, key_index;
    if (!PyArg_ParseTuple(args, "y#nnnO!O!nO!O!|O:encode_json_records", &data, &n, &pos, &limit, &line, &PyTuple_Type, &kinds_obj,
                          &PyTuple_Type, &names, &key_index, &PyTuple_Type, &required_obj, &PyTuple_Type, &parts_obj, &avro))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj), nparts = PyTuple_GET_SIZE(parts_obj);
    if (ncols < 1 || PyTuple_GET_SIZE(names) != ncols || key_index < -1 || key_index >= ncols || pos < 0 || pos > n) {
        PyErr_SetString(PyExc_ValueError, "encode_json_records: bad column settings");
        return NULL;
    }
    int kinds[ncols], required[ncols], in_value[ncols], typed;
    Part parts[nparts > 0 ? nparts : 1];
    const char *name_text[ncols];
    Py_ssize_t name_len[ncols];
    static const Word words[] = {{"true", 4, 1}, {"false", 5, 0}};
    JsonEncoding j = {{ncols, key_index, 2, nparts, kinds, required, in_value, words, parts, JSON_NULL_FIELD, 1, 0, -1},
                      name_text, name_len};
    if (read_kinds(kinds_obj, kinds, ncols, &typed) < 0 || read_required(required_obj, ncols, required) < 0 ||
        read_parts(parts_obj, ncols, parts, in_value) < 0 || read_json_names(names, &j) < 0 || read_avro(avro, parts, nparts, &j.e) < 0)
        return NULL;
    Buffer out = {NULL, 0, 0};
    EncodeProgress at = {pos, line, 0};
    int how = encode_json_lines(&j, (const unsigned char *)data, n, limit, &out, &at);
    PyObject *result = NULL;
    if (how >= 0)
        result = Py_BuildValue("innny#", how, at.pos, at.line, at.count, out.data ? out.data : "", (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return result;
}

/*
 * json_lines(rows, names, fallback) -> bytes
 *
 * Each row (a list as wide as names) as its JSON object and a newline, as
 * orjson.dumps(dict(zip(schema names, row)), option=OPT_APPEND_NEWLINE) writes it: names[i] is the
 * bytes '"name":', with ',' before all but the first. Values other than str, int, float, bool, None
 * and datetimes (naive or UTC) are written by fallback(value) -> bytes (orjson.dumps).
 */
static PyObject *json_lines(PyObject *self, PyObject *args) {
    PyObject *rows, *names, *fallback;
    if (!PyArg_ParseTuple(args, "O!O!O:json_lines", &PyList_Type, &rows, &PyTuple_Type, &names, &fallback))
        return NULL;
    Py_ssize_t width = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < width; i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, i)))
            return PyErr_Format(PyExc_TypeError, "json_lines: names are bytes");
    Buffer out = {NULL, 0, 0};
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(rows); r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyList_Check(row) || PyList_GET_SIZE(row) != width) {
            PyErr_SetString(PyExc_TypeError, "json_lines: rows are lists as wide as names");
            goto failed;
        }
        if (add(&out, "{", 1) < 0)
            goto failed;
        for (Py_ssize_t i = 0; i < width; i++) {
            PyObject *name = PyTuple_GET_ITEM(names, i);
            if (add(&out, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name)) < 0 ||
                json_value(&out, PyList_GET_ITEM(row, i), fallback) < 0)
                goto failed;
        }
        if (add(&out, "}\n", 2) < 0)
            goto failed;
    }
    PyObject *result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return result;
failed:
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_rows", split_rows, METH_VARARGS, "typed rows from CSV text (see the source)"},
    {"type_fields", type_fields, METH_VARARGS, "one record's fields checked and typed (see the source)"},
    {"format_rows", format_rows, METH_VARARGS, "rows as CSV text (see the source)"},
    {"json_rows", json_rows, METH_VARARGS, "JSON objects as typed rows (see the source)"},
    {"encode_records", encode_records, METH_VARARGS, "CSV text as Kafka keys and JSON values (see the source)"},
    {"encode_json_records", encode_json_records, METH_VARARGS, "JSON lines as Kafka keys and values (see the source)"},
    {"json_lines", json_lines, METH_VARARGS, "rows as JSON lines (see the source)"},
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
