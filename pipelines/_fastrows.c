/*
 * The CSV parser's per-row loop in C: records from a csv.reader become typed rows with no Python
 * call per row (pipelines/plugins/csv_parser.py; that module keeps a Python loop with the same
 * results for when this is not built). Anything out of the ordinary (a record with the wrong
 * number of fields, a value that does not convert, a csv.Error) is handed back to the Python
 * side, which reports it exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

enum { KIND_STRING = 0, KIND_LONG = 1, KIND_DOUBLE = 2, KIND_MAPPING = 3, KIND_CALL = 4 };
enum { DONE_FULL = 0, DONE_END = 1, DONE_CSV_ERROR = 2, DONE_WIDTH = 3, DONE_VALUE = 4 };

static PyObject *line_num_name;

/* 1 converted, 0 does not convert (a ValueError, TypeError or OverflowError, cleared), -1 other error */
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

static int line_num(PyObject *reader, Py_ssize_t *out) {
    PyObject *n = PyObject_GetAttr(reader, line_num_name);
    if (!n)
        return -1;
    *out = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/*
 * read_rows(reader, rows, line_nos, limit, skip, prev, kinds, hows, null, extra_ok, optional_ok, csv_error)
 *   -> (done, start, prev, payload)
 *
 * Appends to `rows` (and each row's first line to `line_nos`) the records `reader` (a csv.reader)
 * gives, typed: kinds[i] says how field i converts (0 string: kept; 1 long, 2 double: with hows[i]
 * for what the fast path does not take; 3 hows[i][text]; 4 hows[i](text)); an empty field of a
 * typed column, or one equal to `null` (not None), becomes None. `prev` is the physical line
 * where the previous record ended (`skip` + reader.line_num). Stops with `done`:
 *   0 len(rows) reached limit; 1 the reader is exhausted;
 *   2 the reader raised `csv_error` (payload: the exception; start/prev not yet moved past it);
 *   3 a record has the wrong number of fields (payload: the fields) and neither extra_ok nor
 *     optional_ok applies; 4 a field does not convert (payload: (column index, the field));
 * for 3 and 4, `start`..`prev` are the record's lines and the record is not in `rows`.
 */
static PyObject *read_rows(PyObject *self, PyObject *args) {
    PyObject *reader, *rows, *line_nos, *kinds_obj, *hows, *null, *csv_error;
    Py_ssize_t limit, skip, prev;
    int extra_ok, optional_ok;
    if (!PyArg_ParseTuple(args, "OO!O!nnnO!O!OppO:read_rows", &reader, &PyList_Type, &rows, &PyList_Type, &line_nos,
                          &limit, &skip, &prev, &PyTuple_Type, &kinds_obj, &PyTuple_Type, &hows, &null, &extra_ok,
                          &optional_ok, &csv_error))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj);
    if (ncols < 1 || PyTuple_GET_SIZE(hows) != ncols) {
        PyErr_SetString(PyExc_ValueError, "kinds and hows need one entry per column");
        return NULL;
    }
    int kinds[ncols];
    int typed = 0;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        kinds[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        if (kinds[i] == -1 && PyErr_Occurred())
            return NULL;
        typed |= kinds[i] != KIND_STRING;
    }
    PyObject *iter = PyObject_GetIter(reader);
    if (!iter)
        return NULL;
    int done;
    Py_ssize_t start = prev;
    PyObject *payload = NULL;
    for (;;) {
        if (PyList_GET_SIZE(rows) >= limit) {
            done = DONE_FULL;
            break;
        }
        PyObject *fields = PyIter_Next(iter);
        if (!fields) {
            if (!PyErr_Occurred()) {
                done = DONE_END;
                break;
            }
            if (!PyErr_ExceptionMatches(csv_error))
                goto fail;
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            payload = value ? value : Py_NewRef(Py_None);
            done = DONE_CSV_ERROR;
            break;
        }
        Py_ssize_t n;
        if (line_num(reader, &n) < 0) {
            Py_DECREF(fields);
            goto fail;
        }
        start = prev + 1;
        prev = skip + n;
        Py_ssize_t width = PyList_GET_SIZE(fields);
        if (width == 0) { /* a blank line is not a row */
            Py_DECREF(fields);
            continue;
        }
        if (width != ncols) {
            if (width > ncols && extra_ok) {
                if (PyList_SetSlice(fields, ncols, width, NULL) < 0) {
                    Py_DECREF(fields);
                    goto fail;
                }
            } else if (width < ncols && optional_ok) {
                for (Py_ssize_t i = width; i < ncols; i++)
                    if (PyList_Append(fields, Py_None) < 0) {
                        Py_DECREF(fields);
                        goto fail;
                    }
            } else {
                payload = fields;
                done = DONE_WIDTH;
                break;
            }
        }
        int bad = -1;
        for (Py_ssize_t i = 0; i < ncols; i++) {
            PyObject *text = PyList_GET_ITEM(fields, i);
            if (text == Py_None)
                continue;
            if (null != Py_None) {
                int same = PyUnicode_Compare(text, null) == 0;
                if (same) {
                    PyList_SetItem(fields, i, Py_NewRef(Py_None));
                    continue;
                }
            }
            if (!typed || kinds[i] == KIND_STRING)
                continue;
            if (PyUnicode_GET_LENGTH(text) == 0) {
                PyList_SetItem(fields, i, Py_NewRef(Py_None));
                continue;
            }
            PyObject *value;
            int ok = convert(kinds[i], PyTuple_GET_ITEM(hows, i), text, &value);
            if (ok < 0) {
                Py_DECREF(fields);
                goto fail;
            }
            if (ok == 0) {
                bad = (int)i;
                break;
            }
            PyList_SetItem(fields, i, value);
        }
        if (bad >= 0) {
            payload = Py_BuildValue("(iO)", bad, PyList_GET_ITEM(fields, bad));
            Py_DECREF(fields);
            if (!payload)
                goto fail;
            done = DONE_VALUE;
            break;
        }
        PyObject *line = PyLong_FromSsize_t(start);
        int appended = line && PyList_Append(rows, fields) == 0 && PyList_Append(line_nos, line) == 0;
        Py_XDECREF(line);
        Py_DECREF(fields);
        if (!appended)
            goto fail;
    }
    Py_DECREF(iter);
    return Py_BuildValue("innN", done, start, prev, payload ? payload : Py_NewRef(Py_None));
fail:
    Py_DECREF(iter);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_rows", read_rows, METH_VARARGS, "typed rows from a csv.reader (see the source)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrows", "The CSV parser's per-row loop.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastrows(void) {
    line_num_name = PyUnicode_InternFromString("line_num");
    if (!line_num_name)
        return NULL;
    return PyModule_Create(&module);
}
