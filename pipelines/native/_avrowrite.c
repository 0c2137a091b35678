/*
 * Rows to Kafka records with Avro values in the Confluent wire format, in batches: the Kafka
 * output's Avro values without a Python dict or a fastavro call per row. See avro_records below;
 * the plan is made by pipelines/native/avro_values.py, and the Python path (pipelines/kafka/values.py)
 * stays for every row this loop leaves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>

#include "_common.h"

/* How a field is written (see avro_records). */
enum { AV_STRING = 0, AV_LONG = 1, AV_INT = 2, AV_DOUBLE = 3, AV_FLOAT = 4, AV_BOOLEAN = 5, AV_MICROS = 6, AV_MILLIS = 7, AV_CODES };

/* One field of the plan. */
typedef struct {
    Py_ssize_t column; /* -1: no column (its null branch is written) */
    int code, null_branch, value_branch;
} Field;

/* An aware UTC datetime as seconds since the epoch and its microseconds (0 to 999999): 1, or 0
 * for anything else (naive, another zone, another type). */
static int utc_time(PyObject *v, long long *seconds, long long *micro) {
    if (!PyDateTime_CheckExact(v) || PyDateTime_DATE_GET_TZINFO(v) != PyDateTime_TimeZone_UTC)
        return 0;
    long long days = days_from_civil(PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v));
    *seconds = days * 86400 + PyDateTime_DATE_GET_HOUR(v) * 3600 + PyDateTime_DATE_GET_MINUTE(v) * 60 +
               PyDateTime_DATE_GET_SECOND(v);
    *micro = PyDateTime_DATE_GET_MICROSECOND(v);
    return 1;
}

/* A str as an Avro string (length, UTF-8): 1, 0 odd (not a str, a lone surrogate), -1 error. */
static int put_string(Buffer *out, PyObject *v) {
    Py_ssize_t n;
    const char *s = PyUnicode_CheckExact(v) ? PyUnicode_AsUTF8AndSize(v, &n) : NULL;
    if (!s) {
        PyErr_Clear();
        return 0;
    }
    return add_avro_long(out, n) < 0 || add(out, s, (size_t)n) < 0 ? -1 : 1;
}

/* An int as an Avro long, or an int within 32 bits: 1, 0 odd, -1 error. */
static int put_integer(Buffer *out, PyObject *v, int code) {
    int overflow;
    if (!PyLong_CheckExact(v))
        return 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (n == -1 && PyErr_Occurred()) || (code == AV_INT && (n < INT32_MIN || n > INT32_MAX))) {
        PyErr_Clear();
        return 0;
    }
    return add_avro_long(out, n) < 0 ? -1 : 1;
}

/* A float as an Avro double, or float (4 bytes; out of its range: odd, as struct.pack refuses it). */
static int put_real(Buffer *out, PyObject *v, int code) {
    if (!PyFloat_CheckExact(v))
        return 0;
    double d = PyFloat_AS_DOUBLE(v);
    if (code == AV_DOUBLE)
        return add_avro_double(out, d) < 0 ? -1 : 1;
    float f = (float)d;
    if (isinf(f) && !isinf(d))
        return 0;
    return add_avro_float(out, f) < 0 ? -1 : 1;
}

/* A non-null value as its field's type: 1, 0 odd, -1 error. */
static int put_value(Buffer *out, PyObject *v, int code) {
    long long seconds, micro;
    switch (code) {
    case AV_STRING:
        return put_string(out, v);
    case AV_LONG:
    case AV_INT:
        return put_integer(out, v, code);
    case AV_DOUBLE:
    case AV_FLOAT:
        return put_real(out, v, code);
    case AV_BOOLEAN:
        if (v != Py_True && v != Py_False)
            return 0;
        return add(out, v == Py_True ? "\1" : "\0", 1) < 0 ? -1 : 1;
    case AV_MICROS:
    case AV_MILLIS: /* as fastavro: seconds * 10^6 + microseconds, or seconds * 1000 + microseconds // 1000 */
        if (!utc_time(v, &seconds, &micro))
            return 0;
        return add_avro_long(out, code == AV_MICROS ? seconds * 1000000 + micro : seconds * 1000 + micro / 1000) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

/* One field of a row: its union branch, then its value. 1, 0 odd (null in a field that is not
 * nullable, a value of another type), -1 error. */
static int put_field(Buffer *out, PyObject *row, const Field *f) {
    PyObject *v = f->column < 0 ? Py_None : PyList_GET_ITEM(row, f->column);
    if (v == Py_None) {
        if (f->null_branch < 0)
            return 0;
        return add_avro_long(out, f->null_branch) < 0 ? -1 : 1;
    }
    if (f->value_branch >= 0 && add_avro_long(out, f->value_branch) < 0)
        return -1;
    return put_value(out, v, f->code);
}

/* Settings of an avro_records call. */
typedef struct {
    Py_ssize_t key_index, nfields, width;
    int framed; /* 0: the values alone, one after the other (an Avro container file's block) */
    const char *header;
    Py_ssize_t header_len;
    const Field *fields;
} Plan;

/* The row's fields appended: 1; 0 odd, out cut back to `start`; -1 error. */
static int put_fields(Buffer *out, const Plan *p, PyObject *row, size_t start) {
    for (Py_ssize_t j = 0; j < p->nfields; j++) {
        int ok = put_field(out, row, &p->fields[j]);
        if (ok != 1) {
            out->len = start;
            return ok;
        }
    }
    return 1;
}

/* One row as a record (uint32 key length, uint32 value length, key, value): 1, 0 odd (out as it
 * was), -1 error. */
static int put_record(Buffer *out, const Plan *p, PyObject *row) {
    if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) < p->width)
        return 0;
    size_t start = out->len;
    if (!p->framed)
        return put_fields(out, p, row, start);
    Py_ssize_t key_len = 0;
    const char *key = NULL;
    if (p->key_index >= 0) {
        PyObject *k = PyList_GET_ITEM(row, p->key_index);
        key = PyUnicode_CheckExact(k) ? PyUnicode_AsUTF8AndSize(k, &key_len) : NULL;
        if (!key || key_len == 0) {
            PyErr_Clear();
            return 0; /* an empty key, or not a str: the Python path says what */
        }
    }
    if (grow(out, 8) < 0)
        return -1;
    out->len += 8;
    if (add(out, key ? key : "", (size_t)key_len) < 0)
        return -1;
    size_t value_start = out->len;
    if (add(out, p->header, (size_t)p->header_len) < 0)
        return -1;
    int ok = put_fields(out, p, row, start);
    if (ok != 1)
        return ok;
    uint32_t lengths[2] = {(uint32_t)key_len, (uint32_t)(out->len - value_start)};
    memcpy(out->data + start, lengths, 8);
    return 1;
}

/* The plan's tuples into fields, and the widest column into p->width: 0, or -1 with an error. */
static int read_plan(PyObject *plan, Field *fields, Plan *p) {
    p->width = p->key_index + 1;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(plan); j++) {
        Field *f = &fields[j];
        PyObject *item = PyTuple_GET_ITEM(plan, j);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "niii", &f->column, &f->code, &f->null_branch, &f->value_branch))
            goto bad;
        if (f->column < -1 || f->code < 0 || f->code >= AV_CODES || (f->column < 0 && f->null_branch < 0))
            goto bad;
        if (f->column + 1 > p->width)
            p->width = f->column + 1;
    }
    return 0;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "avro_records: the plan is (column, code, null_branch, value_branch) per field");
    return -1;
}

/*
 * avro_records(rows, start, key_index, header, plan[, framed]) -> (stop, count, data)
 *
 * Rows from rows[start:] as Kafka records with Avro values, written into `data` as
 * pipelines.native.fused writes them (a native uint32 key length, a uint32 value length, the key,
 * the value), for produce_records (_fastkafka.c). The key is row[key_index], a non-empty str (no
 * key: -1). The value is `header` (the wire format's magic byte and schema id; or b"") and the
 * record's fields, each by its plan entry (column, code, null_branch, value_branch): the row's
 * value at `column` (-1: none, null), written as `code` (0 string, 1 long, 2 int, 3 double,
 * 4 float, 5 boolean, 6 long timestamp-micros, 7 long timestamp-millis; from str, int, float, bool
 * and aware UTC datetime values), preceded by the union branch of null or of the value (-1: the
 * field is not nullable, or not a union).
 *
 * It stops at the first row it would not write exactly as the Python path does (an empty or
 * non-str key, null in a field that is not nullable, a value of another type, an int out of
 * range, a timestamp not in UTC): `stop` is that row's position (len(rows) if none), `count` the
 * records written before it. The caller handles that row the usual way and calls again after it.
 *
 * With `framed` false, `data` holds the values alone, one after the other, as an Avro container
 * file's block holds them (no lengths, no key; give key_index -1 and header b"").
 */
static PyObject *avro_records(PyObject *self, PyObject *args) {
    PyObject *rows, *plan_obj;
    Py_ssize_t start;
    Plan p = {.framed = 1};
    if (!PyArg_ParseTuple(args, "O!nny#O!|p:avro_records", &PyList_Type, &rows, &start, &p.key_index, &p.header, &p.header_len,
                          &PyTuple_Type, &plan_obj, &p.framed))
        return NULL;
    p.nfields = PyTuple_GET_SIZE(plan_obj);
    Field fields[p.nfields > 0 ? p.nfields : 1];
    p.fields = fields;
    if (p.key_index < -1 || read_plan(plan_obj, fields, &p) < 0)
        return p.key_index < -1 ? (PyErr_SetString(PyExc_ValueError, "avro_records: bad key_index"), NULL) : NULL;
    Buffer out = {NULL, 0, 0};
    Py_ssize_t n = PyList_GET_SIZE(rows), i = start < 0 ? 0 : start, count = 0;
    for (; i < n; i++) {
        int ok = put_record(&out, &p, PyList_GET_ITEM(rows, i));
        if (ok < 0) {
            PyMem_Free(out.data);
            return NULL;
        }
        if (ok == 0)
            break;
        count++;
    }
    PyObject *result = Py_BuildValue("nny#", i, count, out.data ? out.data : "", (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return result;
}

static PyMethodDef methods[] = {
    {"avro_records", avro_records, METH_VARARGS, "rows as Kafka records with Avro values (see the source)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_avrowrite", "Rows as Avro records, in batches.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__avrowrite(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    return PyModule_Create(&module);
}
