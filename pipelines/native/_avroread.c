/*
 * Avro decoding's hot loop in C: Avro binary records (Kafka values in the Confluent wire format,
 * the blocks of object container files) straight into typed rows, with no dict per record and no
 * Python call per value (pipelines/kafka/avro_wire.py and pipelines/plugins/avro_parser.py keep
 * the fastavro loop, with the same results, for when this is not built).
 *
 * It reads records of simple fields: null, boolean, int, long, float, double, string, bytes (only
 * skipped) and long as timestamp-millis/-micros, each maybe in a union with null. The plan, made
 * once per writer schema by pipelines.engine.avro.reading.compiled_plan, gives for each field its
 * type, which branch of its union is null (or -1), the column that takes it (or -1) and how its
 * value becomes the column's, as RowConverter converts what fastavro reads. A record out of the
 * ordinary (cut short, bytes after it, a union branch other than 0 and 1, a string that is not
 * UTF-8, a timestamp outside datetime's years, a value that does not convert) is handed back:
 * fastavro then reads it and it is reported exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>

#include "_common.h"
#include "_isoformat.h"

/* The plan's field types and conversions (pipelines/engine/avro/reading.py numbers them alike). */
enum { T_NULL = 0, T_BOOLEAN, T_LONG, T_FLOAT, T_DOUBLE, T_STRING, T_BYTES, T_MILLIS, T_MICROS, T_COUNT };
enum { AS_IS = 0, TO_TEXT, TO_LONG, TO_DOUBLE, FINITE, TO_BOOLEAN, CONVERSION_COUNT };

#define MAX_FIELDS 1024 /* fields a plan may have (they live on the stack) */
#define DAY_MS 86400000LL
#define DAY_US 86400000000LL
#define FIRST_DAY (-719162LL) /* 0001-01-01, in days after 1970-01-01: datetime's first day */
#define LAST_DAY 2932896LL    /* 9999-12-31: its last */

typedef struct {
    int type, null_branch, column, conversion;
} Field;

typedef struct {
    Py_ssize_t nfields, ncols;
    const Field *fields;
} Plan;

/* Bytes being read: s[pos:n] is what is left. */
typedef struct {
    const unsigned char *s;
    size_t n, pos;
} Input;

/* ---- the plan ---- */

/* Whether read_row makes values of `type` for a column with `conversion` (see compiled_plan). */
static int conversion_known(int type, int conversion) {
    switch (type) {
    case T_NULL:
        return 1;
    case T_BOOLEAN:
    case T_MILLIS:
    case T_MICROS:
        return conversion == AS_IS || conversion == TO_TEXT;
    case T_LONG:
        return conversion == AS_IS || conversion == TO_TEXT || conversion == TO_DOUBLE || conversion == TO_BOOLEAN;
    case T_FLOAT:
    case T_DOUBLE:
        return conversion == AS_IS || conversion == TO_TEXT || conversion == TO_LONG || conversion == FINITE;
    case T_STRING:
        return conversion == AS_IS;
    default:
        return 0; /* bytes are only skipped */
    }
}

/* One (type, null branch, column, conversion) tuple into f, checked: 0, or -1 with an error. */
static int read_field(PyObject *item, Py_ssize_t ncols, Field *f) {
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "iiii", &f->type, &f->null_branch, &f->column, &f->conversion)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a plan step is a tuple (type, null branch, column, conversion)");
        return -1;
    }
    if (f->type < 0 || f->type >= T_COUNT || f->null_branch < -1 || f->null_branch > 1 || f->column < -1 ||
        f->column >= ncols || f->conversion < 0 || f->conversion >= CONVERSION_COUNT ||
        (f->column >= 0 && !conversion_known(f->type, f->conversion)) || (f->type == T_NULL && f->null_branch >= 0)) {
        PyErr_SetString(PyExc_ValueError, "a plan step this reader does not know");
        return -1;
    }
    return 0;
}

/* plan_obj (a tuple of steps, one a field of the writer schema, in order) into p->fields, checked:
 * each of the ncols columns taken by exactly one field, and some field taking at least a byte (so
 * that a block holds no more records than bytes). 0, or -1 with an error. */
static int read_plan(PyObject *plan_obj, Plan *p, Field *fields) {
    Py_ssize_t ncols = p->ncols;
    if (ncols < 1 || ncols > p->nfields) {
        PyErr_SetString(PyExc_ValueError, "the plan must give every column exactly one field");
        return -1;
    }
    Py_ssize_t taken[ncols];
    int sized = 0;
    for (Py_ssize_t i = 0; i < ncols; i++)
        taken[i] = 0;
    for (Py_ssize_t i = 0; i < p->nfields; i++) {
        Field *f = &fields[i];
        if (read_field(PyTuple_GET_ITEM(plan_obj, i), ncols, f) < 0)
            return -1;
        if (f->column >= 0)
            taken[f->column]++;
        sized |= f->type != T_NULL || f->null_branch >= 0;
    }
    for (Py_ssize_t i = 0; i < ncols; i++)
        if (taken[i] != 1)
            sized = 0;
    if (!sized) {
        PyErr_SetString(PyExc_ValueError, "the plan must give every column exactly one field, and read at least a byte");
        return -1;
    }
    p->fields = fields;
    return 0;
}

/* ---- reading values ---- */

/* The next long (an int, a union branch, a length): 1 with *out, 0 cut short or longer than 10 bytes. */
static inline int next_long(Input *in, long long *out) {
    return read_avro_long(in->s, in->n, &in->pos, out);
}

/* The next float (4 bytes, widened as fastavro does) or double (8), little-endian: 1 with *out, 0 cut short. */
static int next_real(Input *in, int type, double *out) {
    size_t size = type == T_FLOAT ? 4 : 8;
    if (in->n - in->pos < size)
        return 0;
    const unsigned char *p = in->s + in->pos;
    uint64_t bits = 0;
    for (size_t i = size; i-- > 0;)
        bits = bits << 8 | p[i];
    in->pos += size;
    if (size == 4) {
        uint32_t narrow = (uint32_t)bits;
        float f;
        memcpy(&f, &narrow, 4);
        *out = f;
    } else {
        memcpy(out, &bits, 8);
    }
    return 1;
}

/* The next string's or bytes' content (in->pos moved past it): 1 with *start and *len, 0 cut short
 * or a negative length. */
static int next_bytes(Input *in, const char **start, Py_ssize_t *len) {
    long long size;
    if (!next_long(in, &size) || size < 0 || (unsigned long long)size > in->n - in->pos)
        return 0;
    *start = (const char *)in->s + in->pos;
    *len = (Py_ssize_t)size;
    in->pos += (size_t)size;
    return 1;
}

/* The next string as a str (strict UTF-8, as fastavro decodes it), or with out NULL only checked:
 * 1 (with *out), 0 cut short or not UTF-8 (handed back), -1 error. */
static int string_field(Input *in, PyObject **out) {
    const char *s;
    Py_ssize_t n;
    if (!next_bytes(in, &s, &n))
        return 0;
    if (!out) {
        Py_ssize_t i = 0;
        while (i < n && !(s[i] & 0x80))
            i++;
        if (i == n)
            return 1; /* ASCII: UTF-8 */
    }
    PyObject *text = PyUnicode_DecodeUTF8(s, n, NULL);
    if (!text) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (out)
        *out = text;
    else
        Py_DECREF(text);
    return 1;
}

/* ---- values for their columns ---- */

/* The proleptic Gregorian date of `days` after 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil_date(long long days, int *year, int *month, int *day) {
    long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)((long long)yoe + era * 400 + (*month <= 2));
}

/* v milli- (T_MILLIS) or microseconds (T_MICROS) after 1970 as fastavro reads it (epoch +
 * timedelta: an aware UTC datetime), for its column (its isoformat() text for TO_TEXT), or with
 * out NULL only checked: 1 (with *out), 0 outside datetime's years (fastavro fails: handed back), -1 error. */
static int timestamp_value(long long v, int type, int conversion, PyObject **out) {
    long long unit = type == T_MILLIS ? DAY_MS : DAY_US, days = v / unit, rest = v % unit;
    if (rest < 0) {
        rest += unit;
        days--;
    }
    if (days < FIRST_DAY || days > LAST_DAY)
        return 0;
    if (!out)
        return 1;
    long long us = type == T_MILLIS ? rest * 1000 : rest;
    int year, month, day;
    civil_date(days, &year, &month, &day);
    PyObject *t = PyDateTimeAPI->DateTime_FromDateAndTime(year, month, day, (int)(us / 3600000000LL), (int)(us / 60000000 % 60),
                                                          (int)(us / 1000000 % 60), (int)(us % 1000000),
                                                          PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
    if (t && conversion == TO_TEXT) {
        char text[ISOFORMAT_MAX];
        size_t len = isoformat(text, t);
        Py_SETREF(t, PyUnicode_FromStringAndSize(text, (Py_ssize_t)len));
    }
    *out = t;
    return t ? 1 : -1;
}

/* A long (or int) for its column: str(v), float(v), True/False for 1/0 (another value does not
 * convert), or the int. 1 with *out, 0 handed back, -1 error. */
static int long_value(long long v, int conversion, PyObject **out) {
    if (conversion == TO_TEXT) {
        char text[24];
        int len = snprintf(text, sizeof text, "%lld", v);
        *out = PyUnicode_FromStringAndSize(text, len);
    } else if (conversion == TO_DOUBLE) {
        *out = PyFloat_FromDouble((double)v);
    } else if (conversion == TO_BOOLEAN) {
        if (v != 0 && v != 1)
            return 0;
        *out = PyBool_FromLong((long)v);
    } else {
        *out = PyLong_FromLongLong(v);
    }
    return *out ? 1 : -1;
}

/* A float or double for its column: repr(v), the int of a whole number within 64 bits, the float
 * if finite (FINITE), or the float. 1 with *out, 0 handed back (it does not convert), -1 error. */
static int real_value(double v, int conversion, PyObject **out) {
    if (conversion == TO_TEXT) {
        char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!text)
            return -1;
        *out = PyUnicode_FromString(text);
        PyMem_Free(text);
    } else if (conversion == TO_LONG) {
        if (!(v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0))
            return 0; /* NaN and the infinities fail the first test */
        *out = PyLong_FromDouble(v);
    } else {
        if (conversion == FINITE && !isfinite(v))
            return 0;
        *out = PyFloat_FromDouble(v);
    }
    return *out ? 1 : -1;
}

/* A boolean for its column: "true"/"false" (TO_TEXT), or True/False. 1 with *out, -1 error. */
static int boolean_value(int v, int conversion, PyObject **out) {
    if (conversion == TO_TEXT)
        *out = PyUnicode_FromString(v ? "true" : "false");
    else
        *out = Py_NewRef(v ? Py_True : Py_False);
    return *out ? 1 : -1;
}

/* ---- records ---- */

/* The value of a field of type f->type at in (in->pos moved past it) for its column; read and
 * checked only when no column takes it (keep 0). 1 (with *out when keep), 0 handed back, -1 error. */
static int typed_value(Input *in, const Field *f, int keep, PyObject **out) {
    long long n;
    double d;
    const char *s;
    Py_ssize_t len;
    switch (f->type) {
    case T_NULL:
        *out = keep ? Py_NewRef(Py_None) : NULL;
        return 1;
    case T_BOOLEAN:
        if (in->pos >= in->n)
            return 0;
        n = in->s[in->pos++] != 0; /* any byte but 0 is true, as fastavro reads it */
        return keep ? boolean_value((int)n, f->conversion, out) : 1;
    case T_LONG:
        if (!next_long(in, &n))
            return 0;
        return keep ? long_value(n, f->conversion, out) : 1;
    case T_FLOAT:
    case T_DOUBLE:
        if (!next_real(in, f->type, &d))
            return 0;
        return keep ? real_value(d, f->conversion, out) : 1;
    case T_STRING:
        return string_field(in, keep ? out : NULL);
    case T_BYTES:
        return next_bytes(in, &s, &len);
    default:
        if (!next_long(in, &n))
            return 0;
        return timestamp_value(n, f->type, f->conversion, keep ? out : NULL);
    }
}

/* The next field's value for its column (NULL when no column takes it): its union's branch first,
 * if it has one. 1 with *out, 0 handed back, -1 error. */
static int field_value(Input *in, const Field *f, PyObject **out) {
    *out = NULL;
    int keep = f->column >= 0;
    if (f->null_branch >= 0) {
        long long branch;
        if (!next_long(in, &branch) || (branch != 0 && branch != 1))
            return 0; /* fastavro takes -1 as the last branch, and fails past the end: its path */
        if (branch == f->null_branch) {
            *out = keep ? Py_NewRef(Py_None) : NULL;
            return 1;
        }
    }
    return typed_value(in, f, keep, out);
}

/* One record at in (in->pos moved past it) as a new row of p->ncols values: 1 with *row, 0 handed
 * back, -1 error. */
static int read_row(Input *in, const Plan *p, PyObject **row) {
    *row = PyList_New(p->ncols);
    if (!*row)
        return -1;
    for (Py_ssize_t i = 0; i < p->nfields; i++) {
        PyObject *value;
        int got = field_value(in, &p->fields[i], &value);
        if (got <= 0) {
            Py_CLEAR(*row); /* its unset items are NULL, which the list's release skips */
            return got;
        }
        if (value)
            PyList_SET_ITEM(*row, p->fields[i].column, value);
    }
    return 1;
}

/* ---- the entry points ---- */

/* The plan's arguments read: 0 with p (its fields in `fields`, MAX_FIELDS of room), or -1 with an error. */
static int plan_of(PyObject *plan_obj, Py_ssize_t ncols, Plan *p, Field *fields) {
    p->nfields = PyTuple_GET_SIZE(plan_obj);
    p->ncols = ncols;
    if (p->nfields > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "a plan has at most 1024 fields");
        return -1;
    }
    return read_plan(plan_obj, p, fields);
}

/* The row of one wire-format value appended to rows, or its position to handed_back: 0, or -1 with an error. */
static int wire_value(PyObject *value, Py_ssize_t position, unsigned long schema_id, const Plan *p, PyObject *rows,
                      PyObject *handed_back) {
    int got = 0;
    PyObject *row = NULL;
    if (PyBytes_Check(value) && PyBytes_GET_SIZE(value) >= 5) {
        const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(value);
        unsigned long id = (unsigned long)s[1] << 24 | (unsigned long)s[2] << 16 | (unsigned long)s[3] << 8 | s[4];
        Input in = {s, (size_t)PyBytes_GET_SIZE(value), 5};
        if (s[0] == 0 && id == schema_id) {
            got = read_row(&in, p, &row);
            if (got > 0 && in.pos != in.n) {
                Py_CLEAR(row); /* bytes after the record */
                got = 0;
            }
        }
    }
    if (got < 0)
        return -1;
    if (got > 0)
        return append_new(rows, row);
    return append_new(handed_back, PyLong_FromSsize_t(position));
}

/*
 * wire_rows(values, schema_id, plan, ncols) -> (rows, handed_back)
 *
 * Kafka values (a list of bytes) in the Confluent wire format (magic byte 0, the schema id in 4
 * big-endian bytes, one Avro record) to rows of ncols columns, as the plan says: rows of the
 * values written with schema_id that read in full, in order; handed_back the positions of all
 * others (not bytes, not the wire format, another schema id, cut short, bytes after the record,
 * anything out of the ordinary), ascending, which the caller reads with fastavro.
 */
static PyObject *wire_rows(PyObject *self, PyObject *args) {
    PyObject *values, *plan_obj;
    unsigned long schema_id;
    Py_ssize_t ncols;
    if (!PyArg_ParseTuple(args, "O!kO!n:wire_rows", &PyList_Type, &values, &schema_id, &PyTuple_Type, &plan_obj, &ncols))
        return NULL;
    Plan p;
    Field fields[MAX_FIELDS];
    if (plan_of(plan_obj, ncols, &p, fields) < 0)
        return NULL;
    PyObject *rows = PyList_New(0), *handed_back = PyList_New(0);
    if (!rows || !handed_back)
        goto fail;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(values); r++)
        if (wire_value(PyList_GET_ITEM(values, r), r, schema_id, &p, rows, handed_back) < 0)
            goto fail;
    return Py_BuildValue("NN", rows, handed_back);
fail:
    Py_XDECREF(rows);
    Py_XDECREF(handed_back);
    return NULL;
}

/*
 * block_rows(data, count, plan, ncols) -> rows, or None
 *
 * The `count` records of an Avro container block (data: its decompressed bytes, a bytes-like
 * object) to rows of ncols columns, as the plan says. None when any record is out of the ordinary
 * or bytes are left after the last (the caller then reads the block with fastavro, and reports
 * what is wrong as before).
 */
static PyObject *block_rows(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t count, ncols;
    PyObject *plan_obj, *rows = NULL;
    if (!PyArg_ParseTuple(args, "y*nO!n:block_rows", &data, &count, &PyTuple_Type, &plan_obj, &ncols))
        return NULL;
    Plan p;
    Field fields[MAX_FIELDS];
    Input in = {data.buf, (size_t)data.len, 0};
    int got = plan_of(plan_obj, ncols, &p, fields) < 0 ? -1 : 1;
    if (got > 0 && (count < 0 || count > data.len))
        got = 0; /* every record takes a byte at least: not a block fastavro reads either */
    if (got > 0 && !(rows = PyList_New(count)))
        got = -1;
    for (Py_ssize_t r = 0; got > 0 && r < count; r++) {
        PyObject *row;
        got = read_row(&in, &p, &row);
        if (got > 0)
            PyList_SET_ITEM(rows, r, row);
    }
    PyBuffer_Release(&data);
    if (got > 0 && in.pos == in.n)
        return rows;
    Py_XDECREF(rows);
    if (got < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"wire_rows", wire_rows, METH_VARARGS, "Confluent wire-format Avro values as typed rows (see the source)"},
    {"block_rows", block_rows, METH_VARARGS, "an Avro container block's records as typed rows (see the source)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_avroread", "Avro decoding's hot loop.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__avroread(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    return PyModule_Create(&module);
}
