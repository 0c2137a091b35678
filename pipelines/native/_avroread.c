/*
 * Avro decoding's hot loop in C: Avro binary records (Kafka values in the Confluent wire format,
 * the blocks of object container files) straight into typed rows, with no dict per record and no
 * Python call per value (pipelines/kafka/avro_wire.py and pipelines/plugins/avro_parser.py keep
 * the fastavro loop, with the same results, for when this is not built); or, for the fused import
 * (pipelines/native/fused_avro.py), a container block's records straight into Kafka records with
 * no Python object at all (block_records).
 *
 * It reads records of simple fields: null, boolean, int, long, float, double, string, bytes (only
 * skipped) and long as timestamp-millis/-micros, each maybe in a union with null. The plan, made
 * once per writer schema by pipelines.engine.avro.reading.compiled_plan, gives for each field its
 * type, which branch of its union is null (or -1), the column that takes it (or -1) and how its
 * value becomes the column's, as RowConverter converts what fastavro reads. A record out of the
 * ordinary (cut short, bytes after it, a union branch other than 0 and 1, a string that is not
 * UTF-8, a timestamp outside datetime's years, a value that does not convert) is handed back:
 * fastavro then reads it and it is reported exactly as before.
 *
 * One decoder serves both: each record's fields become Values (what the row's Python values would
 * be, without the objects), which read_row makes objects of and put_record writes as a record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>

#include "_common.h"
#include "_isoformat.h"
#include "_jsonwrite.h"

/* The plan's field types and conversions (pipelines/engine/avro/reading.py numbers them alike). */
enum { T_NULL = 0, T_BOOLEAN, T_LONG, T_FLOAT, T_DOUBLE, T_STRING, T_BYTES, T_MILLIS, T_MICROS, T_COUNT };
enum { AS_IS = 0, TO_TEXT, TO_LONG, TO_DOUBLE, FINITE, TO_BOOLEAN, CONVERSION_COUNT };

#define MAX_FIELDS 1024 /* fields a plan may have (they live on the stack) */
#define TEXT_MAX 40      /* a converted value's text: a long, a float's repr, an isoformat() */
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

/* Whether s[0:n] is UTF-8 as Python's strict decoder (fastavro's) takes it: no overlong forms, no
 * surrogates, nothing past U+10FFFF. ASCII is checked 8 bytes at a time. */
static int valid_utf8(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        uint64_t word;
        if (n - i >= 8 && (memcpy(&word, s + i, 8), !(word & 0x8080808080808080ULL))) {
            i += 8;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more = c < 0xC2 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : c < 0xF5 ? 3 : 0;
        if (!more || n - i <= more)
            return 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80; /* overlong forms below */
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;  /* surrogates, past U+10FFFF above */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (int k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

/* ---- values as their columns hold them ---- */

/* A field's value for its column, as the row's Python value would be, without the object: None, a
 * str (its UTF-8: in the record, or in `text` for a converted value), an int, a float, a bool, or an
 * aware UTC datetime (microseconds after 1970, within datetime's years). */
enum { V_NULL = 0, V_TEXT, V_LONG, V_REAL, V_BOOL, V_TIME };

typedef struct {
    int kind;
    long long n;   /* V_LONG; V_BOOL: 0 or 1; V_TIME: microseconds */
    double d;      /* V_REAL */
    const char *s; /* V_TEXT */
    Py_ssize_t len;
    char text[TEXT_MAX];
} Value;

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

/* us microseconds after 1970 as (days after 1970, microseconds into the day). */
static void split_day(long long us, long long *days, long long *rest) {
    *days = us / DAY_US;
    *rest = us % DAY_US;
    if (*rest < 0) {
        *rest += DAY_US;
        (*days)--;
    }
}

/* isoformat() of the aware UTC datetime us microseconds after 1970 (within datetime's years), as
 * datetime (and orjson) write it, into out (ISOFORMAT_MAX bytes, no NUL): its length. */
static size_t iso_text(long long us, char *out) {
    long long days, rest;
    int year, month, day, micro;
    split_day(us, &days, &rest);
    civil_date(days, &year, &month, &day);
    micro = (int)(rest % 1000000);
    rest /= 1000000;
    char *p = out;
    iso_two_digits(p, year / 100);
    iso_two_digits(p + 2, year % 100);
    p += 4;
    *p++ = '-'; iso_two_digits(p, month); p += 2;
    *p++ = '-'; iso_two_digits(p, day); p += 2;
    *p++ = 'T'; iso_two_digits(p, (int)(rest / 3600)); p += 2;
    *p++ = ':'; iso_two_digits(p, (int)(rest / 60 % 60)); p += 2;
    *p++ = ':'; iso_two_digits(p, (int)(rest % 60)); p += 2;
    if (micro) {
        *p++ = '.';
        for (int d = 100000; d; d /= 10)
            *p++ = (char)('0' + micro / d % 10);
    }
    memcpy(p, "+00:00", 6);
    return (size_t)(p + 6 - out);
}

/* v's text (its own `text`) as the value: a str. */
static void own_text(Value *v, size_t len) {
    v->kind = V_TEXT;
    v->s = v->text;
    v->len = (Py_ssize_t)len;
}

/* n milli- (T_MILLIS) or microseconds (T_MICROS) after 1970 as fastavro reads it (epoch +
 * timedelta: an aware UTC datetime), for its column (its isoformat() text for TO_TEXT): 1, or 0
 * outside datetime's years (fastavro fails: handed back). */
static int time_value(long long n, int type, int conversion, Value *v) {
    long long unit = type == T_MILLIS ? DAY_MS : DAY_US, days = n / unit;
    if (n % unit < 0)
        days--;
    if (days < FIRST_DAY || days > LAST_DAY)
        return 0;
    v->kind = V_TIME;
    v->n = type == T_MILLIS ? n * 1000 : n;
    if (conversion == TO_TEXT)
        own_text(v, iso_text(v->n, v->text));
    return 1;
}

/* A long (or int) for its column: str(n), float(n), True/False for 1/0 (another value does not
 * convert), or the int. 1, 0 handed back. */
static int long_value(long long n, int conversion, Value *v) {
    if (conversion == TO_TEXT) {
        own_text(v, (size_t)snprintf(v->text, TEXT_MAX, "%lld", n));
    } else if (conversion == TO_DOUBLE) {
        v->kind = V_REAL;
        v->d = (double)n;
    } else if (conversion == TO_BOOLEAN) {
        if (n != 0 && n != 1)
            return 0;
        v->kind = V_BOOL;
        v->n = n;
    } else {
        v->kind = V_LONG;
        v->n = n;
    }
    return 1;
}

/* A float or double for its column: repr(d), the int of a whole number within 64 bits, the float
 * if finite (FINITE), or the float. 1, 0 handed back (it does not convert), -1 error. */
static int real_value(double d, int conversion, Value *v) {
    if (conversion == TO_TEXT) {
        char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!text)
            return -1;
        size_t len = strlen(text);
        memcpy(v->text, text, len < TEXT_MAX ? len : TEXT_MAX);
        PyMem_Free(text);
        if (len >= TEXT_MAX)
            return 0; /* never: a repr is at most 24 characters */
        own_text(v, len);
    } else if (conversion == TO_LONG) {
        if (!(d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return 0; /* NaN and the infinities fail the first test */
        v->kind = V_LONG;
        v->n = (long long)d;
    } else {
        if (conversion == FINITE && !isfinite(d))
            return 0;
        v->kind = V_REAL;
        v->d = d;
    }
    return 1;
}

/* A boolean for its column: "true"/"false" (TO_TEXT), or True/False. */
static int boolean_value(int b, int conversion, Value *v) {
    if (conversion == TO_TEXT) {
        memcpy(v->text, b ? "true" : "false", 5);
        own_text(v, b ? 4 : 5);
    } else {
        v->kind = V_BOOL;
        v->n = b;
    }
    return 1;
}

/* The value of a field of type f->type at in (in->pos moved past it) for its column (a field no
 * column takes has conversion AS_IS: read and checked only). 1, 0 handed back, -1 error. */
static int typed_value(Input *in, const Field *f, Value *v) {
    long long n;
    double d;
    switch (f->type) {
    case T_NULL:
        v->kind = V_NULL;
        return 1;
    case T_BOOLEAN:
        if (in->pos >= in->n)
            return 0;
        return boolean_value(in->s[in->pos++] != 0, f->conversion, v); /* any byte but 0 is true, as fastavro reads it */
    case T_LONG:
        return next_long(in, &n) ? long_value(n, f->conversion, v) : 0;
    case T_FLOAT:
    case T_DOUBLE:
        return next_real(in, f->type, &d) ? real_value(d, f->conversion, v) : 0;
    case T_STRING:
        if (!next_bytes(in, &v->s, &v->len) || !valid_utf8((const unsigned char *)v->s, v->len))
            return 0; /* not UTF-8: fastavro fails, and says how */
        v->kind = V_TEXT;
        return 1;
    case T_BYTES:
        v->kind = V_NULL; /* only skipped */
        return next_bytes(in, &v->s, &v->len);
    default:
        return next_long(in, &n) ? time_value(n, f->type, f->conversion, v) : 0;
    }
}

/* The next field's value into v: its union's branch first, if it has one. 1, 0 handed back, -1 error. */
static int field_value(Input *in, const Field *f, Value *v) {
    if (f->null_branch >= 0) {
        long long branch;
        if (!next_long(in, &branch) || (branch != 0 && branch != 1))
            return 0; /* fastavro takes -1 as the last branch, and fails past the end: its path */
        if (branch == f->null_branch) {
            v->kind = V_NULL;
            return 1;
        }
    }
    return typed_value(in, f, v);
}

/* One record at in (in->pos moved past it) into values[p->ncols], a value a column: 1, 0 handed
 * back, -1 error. */
static int read_values(Input *in, const Plan *p, Value *values) {
    Value skipped;
    for (Py_ssize_t i = 0; i < p->nfields; i++) {
        const Field *f = &p->fields[i];
        int got = field_value(in, f, f->column >= 0 ? &values[f->column] : &skipped);
        if (got <= 0)
            return got;
    }
    return 1;
}

/* ---- rows ---- */

/* The aware UTC datetime us microseconds after 1970, as fastavro makes it: new, or NULL with an error. */
static PyObject *datetime_of(long long us) {
    long long days, rest;
    int year, month, day;
    split_day(us, &days, &rest);
    civil_date(days, &year, &month, &day);
    return PyDateTimeAPI->DateTime_FromDateAndTime(year, month, day, (int)(rest / 3600000000LL), (int)(rest / 60000000 % 60),
                                                   (int)(rest / 1000000 % 60), (int)(rest % 1000000),
                                                   PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
}

/* A value as its Python object: new, or NULL with an error. */
static PyObject *value_object(const Value *v) {
    switch (v->kind) {
    case V_TEXT:
        return PyUnicode_DecodeUTF8(v->s, v->len, NULL); /* checked UTF-8: it decodes */
    case V_LONG:
        return PyLong_FromLongLong(v->n);
    case V_REAL:
        return PyFloat_FromDouble(v->d);
    case V_BOOL:
        return PyBool_FromLong((long)v->n);
    case V_TIME:
        return datetime_of(v->n);
    default:
        return Py_NewRef(Py_None);
    }
}

/* One record at in (in->pos moved past it) as a new row of p->ncols values (values: room for them):
 * 1 with *row, 0 handed back, -1 error. */
static int read_row(Input *in, const Plan *p, Value *values, PyObject **row) {
    int got = read_values(in, p, values);
    if (got <= 0)
        return got;
    *row = PyList_New(p->ncols);
    if (!*row)
        return -1;
    for (Py_ssize_t i = 0; i < p->ncols; i++) {
        PyObject *value = value_object(&values[i]);
        if (!value) {
            Py_CLEAR(*row); /* its unset items are NULL, which the list's release skips */
            return -1;
        }
        PyList_SET_ITEM(*row, i, value);
    }
    return 1;
}

/* ---- records: a key and a JSON or Avro value ---- */

/* How an Avro value's field is written (numbered as pipelines/native/_avrowrite.c does). */
enum { AV_STRING = 0, AV_LONG, AV_INT, AV_DOUBLE, AV_FLOAT, AV_BOOLEAN, AV_MICROS, AV_MILLIS, AV_CODES };

/* A piece of a record's value: for a JSON value, its '"name":' label, then a column's value or a
 * constant's JSON; for an Avro value (no label), a column's value written as `code` after the union
 * branch of null or of the value (-1: none), or a constant's Avro bytes. */
typedef struct {
    const char *label, *constant; /* constant: NULL for a column's value */
    Py_ssize_t label_len, constant_len, column;
    int code, null_branch, value_branch;
} Part;

/* What block_records writes of each record's values (see there). */
typedef struct {
    Py_ssize_t ncols, key_index, nparts;
    const int *required; /* per column: neither null nor empty */
    const Part *parts;
    const char *header; /* NULL: JSON values; else Avro values after these bytes (the wire format's) */
    Py_ssize_t header_len;
} Layout;

/* The powers of ten a double holds exactly. */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* m / 10^k written as repr writes a float of those digits: [-]int.frac, "0.00ddd" below 1, ".0" for k 0. */
static int add_plain_decimal(Buffer *b, int negative, long long m, int k) {
    char digits[24], text[48], *p = text;
    int n = snprintf(digits, sizeof digits, "%lld", m);
    if (negative)
        *p++ = '-';
    if (k == 0) {
        memcpy(p, digits, (size_t)n);
        memcpy(p + n, ".0", 2);
        p += n + 2;
    } else if (n > k) {
        memcpy(p, digits, (size_t)(n - k));
        p += n - k;
        *p++ = '.';
        memcpy(p, digits + n - k, (size_t)k);
        p += k;
    } else {
        memcpy(p, "0.", 2);
        memset(p + 2, '0', (size_t)(k - n));
        memcpy(p + 2 + k - n, digits, (size_t)n);
        p += 2 + k;
    }
    return add(b, text, (size_t)(p - text));
}

/* A float's repr without calling it, for the common case: zero, or 1e-4 <= |d| < 1e15 with at most
 * 15 significant digits (repr writes those without an exponent). The shortest text that reads back
 * as d is then m / 10^k for the fewest decimals k with m / 10^k == d (m = d * 10^k rounded: within
 * 0.25 of the right m, and with 15 digits at most, one m a k reads back as d). 1 written, 0 not one
 * of those (json_float writes it), -1 error. */
static int short_real(Buffer *b, double d) {
    double a = fabs(d);
    if (!(a == 0.0 || (a >= 1e-4 && a < 1e15)))
        return 0;
    for (int k = 0; k < (int)(sizeof POW10 / sizeof POW10[0]); k++) {
        double x = a * POW10[k];
        if (x >= 1e15)
            return 0; /* 16 digits or more: repr's own search */
        double m = nearbyint(x);
        if (m / POW10[k] == a) /* correctly rounded, as reading the decimal back */
            return add_plain_decimal(b, signbit(d) != 0, (long long)m, k) < 0 ? -1 : 1;
    }
    return 0;
}

/* A float's JSON as orjson writes it (short_real, else json_float): 1, or -1 with an error. */
static int json_real(Buffer *b, double d) {
    int done = short_real(b, d);
    if (done)
        return done;
    return json_float(b, d) < 0 ? -1 : 1;
}

/* A value's JSON, as orjson writes the row's value: 1, 0 odd, -1 error. */
static int json_of(Buffer *b, const Value *v) {
    char text[ISOFORMAT_MAX + 2];
    switch (v->kind) {
    case V_TEXT:
        return json_string(b, v->s, v->len) < 0 ? -1 : 1;
    case V_LONG:
        return add_long(b, v->n) < 0 ? -1 : 1;
    case V_REAL:
        return json_real(b, v->d);
    case V_BOOL:
        return (v->n ? add(b, "true", 4) : add(b, "false", 5)) < 0 ? -1 : 1;
    case V_TIME: {
        size_t n = iso_text(v->n, text + 1);
        text[0] = text[n + 1] = '"';
        return add(b, text, n + 2) < 0 ? -1 : 1;
    }
    default:
        return add(b, "null", 4) < 0 ? -1 : 1;
    }
}

/* A non-null value as an Avro `code`, as _avrowrite.c's put_value writes the row's value: 1, 0 odd
 * (a value of another type, an int past 32 bits, a float past a 4-byte float's range), -1 error. */
static int avro_of(Buffer *b, const Value *v, int code) {
    switch (code) {
    case AV_STRING:
        if (v->kind != V_TEXT)
            return 0;
        return add_avro_long(b, v->len) < 0 || add(b, v->s, (size_t)v->len) < 0 ? -1 : 1;
    case AV_LONG:
    case AV_INT:
        if (v->kind != V_LONG || (code == AV_INT && (v->n < INT32_MIN || v->n > INT32_MAX)))
            return 0;
        return add_avro_long(b, v->n) < 0 ? -1 : 1;
    case AV_DOUBLE:
    case AV_FLOAT:
        if (v->kind != V_REAL || (code == AV_FLOAT && isinf((float)v->d) && !isinf(v->d)))
            return 0;
        return (code == AV_DOUBLE ? add_avro_double(b, v->d) : add_avro_float(b, (float)v->d)) < 0 ? -1 : 1;
    case AV_BOOLEAN:
        if (v->kind != V_BOOL)
            return 0;
        return add(b, v->n ? "\1" : "\0", 1) < 0 ? -1 : 1;
    default: /* timestamp-micros, or -millis: microseconds // 1000 */
        if (v->kind != V_TIME)
            return 0;
        return add_avro_long(b, code == AV_MICROS ? v->n : v->n / 1000 - (v->n % 1000 < 0)) < 0 ? -1 : 1;
    }
}

/* One field of an Avro value: its union branch, then its value. 1, 0 odd (null in a field that is
 * not nullable, a value avro_of leaves), -1 error. */
static int avro_field(Buffer *b, const Value *v, const Part *part) {
    if (v->kind == V_NULL)
        return part->null_branch < 0 ? 0 : (add_avro_long(b, part->null_branch) < 0 ? -1 : 1);
    if (part->value_branch >= 0 && add_avro_long(b, part->value_branch) < 0)
        return -1;
    return avro_of(b, v, part->code);
}

/* The record's value, {"name":value,...} or the Avro header and fields, appended: 1, 0 odd, -1 error. */
static int put_value(Buffer *b, const Layout *l, const Value *values) {
    int avro = l->header != NULL;
    if (add(b, avro ? l->header : "{", avro ? (size_t)l->header_len : 1) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < l->nparts; j++) {
        const Part *part = &l->parts[j];
        int ok;
        if (part->label_len && add(b, part->label, (size_t)part->label_len) < 0)
            return -1;
        if (part->constant)
            ok = add(b, part->constant, (size_t)part->constant_len) < 0 ? -1 : 1;
        else
            ok = avro ? avro_field(b, &values[part->column], part) : json_of(b, &values[part->column]);
        if (ok != 1)
            return ok;
    }
    return avro || add(b, "}", 1) == 0 ? 1 : -1;
}

/* Whether a value is what the validate filter's `required` refuses: None, or "". */
static inline int missing(const Value *v) {
    return v->kind == V_NULL || (v->kind == V_TEXT && v->len == 0);
}

/* The record's values appended to out: a native uint32 key length, a uint32 value length, the key,
 * the value. 1; 0 odd (an empty or null key, a missing required value, a value put_value leaves),
 * out as it was; -1 error. */
static int put_record(Buffer *out, const Layout *l, const Value *values) {
    const Value *key = &values[l->key_index];
    if (key->kind != V_TEXT || key->len == 0)
        return 0;
    for (Py_ssize_t i = 0; i < l->ncols; i++)
        if (l->required[i] && missing(&values[i]))
            return 0;
    size_t start = out->len;
    if (grow(out, 8) < 0)
        return -1;
    out->len += 8;
    if (add(out, key->s, (size_t)key->len) < 0)
        return -1;
    size_t value_start = out->len;
    int ok = put_value(out, l, values);
    if (ok != 1) {
        out->len = start;
        return ok;
    }
    uint32_t lengths[2] = {(uint32_t)key->len, (uint32_t)(out->len - value_start)};
    memcpy(out->data + start, lengths, 8);
    return 1;
}

/* ---- the layout ---- */

/* required (column indexes) as a flag a column, into required[ncols]: 0, or -1 with an error. */
static int read_required(PyObject *required_obj, Py_ssize_t ncols, int *required) {
    for (Py_ssize_t i = 0; i < ncols; i++)
        required[i] = 0;
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(required_obj); r++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(required_obj, r));
        if (i < 0 || i >= ncols) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "block_records: a required column is out of range");
            return -1;
        }
        required[i] = 1;
    }
    return 0;
}

/* One of parts, (label bytes, column index or constant bytes), into *part: 0, or -1 with an error. */
static int read_part(PyObject *item, Py_ssize_t ncols, Part *part) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
        PyErr_SetString(PyExc_TypeError, "block_records: parts are (label bytes, column index or constant bytes)");
        return -1;
    }
    PyObject *label = PyTuple_GET_ITEM(item, 0), *source = PyTuple_GET_ITEM(item, 1);
    *part = (Part){PyBytes_AS_STRING(label), NULL, PyBytes_GET_SIZE(label), 0, -1, AV_STRING, -1, -1};
    if (PyBytes_Check(source)) {
        part->constant = PyBytes_AS_STRING(source);
        part->constant_len = PyBytes_GET_SIZE(source);
        return 0;
    }
    part->column = PyLong_AsSsize_t(source);
    if (part->column < 0 || part->column >= ncols) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "block_records: a part's column is out of range");
        return -1;
    }
    return 0;
}

/* avro (None: JSON values; or (header bytes, ((code, null_branch, value_branch), ...)), one a part)
 * into the parts and l: 0, or -1 with an error. */
static int read_avro(PyObject *avro, Part *parts, Layout *l) {
    PyObject *codes;
    if (avro == Py_None)
        return 0;
    if (!PyTuple_Check(avro)) {
        PyErr_SetString(PyExc_TypeError, "block_records: avro is (header bytes, codes)");
        return -1;
    }
    if (!PyArg_ParseTuple(avro, "y#O!:block_records avro", &l->header, &l->header_len, &PyTuple_Type, &codes))
        return -1;
    if (PyTuple_GET_SIZE(codes) != l->nparts) {
        PyErr_SetString(PyExc_ValueError, "block_records: one Avro code a part");
        return -1;
    }
    for (Py_ssize_t j = 0; j < l->nparts; j++) {
        Part *part = &parts[j];
        PyObject *item = PyTuple_GET_ITEM(codes, j);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "iii", &part->code, &part->null_branch, &part->value_branch)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "block_records: an Avro code is (code, null branch, value branch)");
            return -1;
        }
        if (part->code < 0 || part->code >= AV_CODES || part->null_branch < -1 || part->value_branch < -1) {
            PyErr_SetString(PyExc_ValueError, "block_records: an Avro code this writer does not know");
            return -1;
        }
    }
    return 0;
}

/* The layout's arguments read into l (its flags in `required`, its parts in `parts`): 0, or -1 with an error. */
static int layout_of(PyObject *required_obj, PyObject *parts_obj, PyObject *avro, Layout *l, int *required, Part *parts) {
    if (l->key_index < 0 || l->key_index >= l->ncols) {
        PyErr_SetString(PyExc_ValueError, "block_records: the key column is out of range");
        return -1;
    }
    if (read_required(required_obj, l->ncols, required) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < l->nparts; j++)
        if (read_part(PyTuple_GET_ITEM(parts_obj, j), l->ncols, &parts[j]) < 0)
            return -1;
    l->required = required;
    l->parts = parts;
    return read_avro(avro, parts, l);
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

/* Room for a record's values, one a column of the plan (released with PyMem_Free): NULL with a MemoryError. */
static Value *values_for(const Plan *p) {
    Value *values = PyMem_Malloc((size_t)p->ncols * sizeof(Value));
    if (!values)
        PyErr_NoMemory();
    return values;
}

/* The row of one wire-format value appended to rows, or its position to handed_back: 0, or -1 with an error. */
static int wire_value(PyObject *value, Py_ssize_t position, unsigned long schema_id, const Plan *p, Value *values,
                      PyObject *rows, PyObject *handed_back) {
    int got = 0;
    PyObject *row = NULL;
    if (PyBytes_Check(value) && PyBytes_GET_SIZE(value) >= 5) {
        const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(value);
        unsigned long id = (unsigned long)s[1] << 24 | (unsigned long)s[2] << 16 | (unsigned long)s[3] << 8 | s[4];
        Input in = {s, (size_t)PyBytes_GET_SIZE(value), 5};
        if (s[0] == 0 && id == schema_id) {
            got = read_row(&in, p, values, &row);
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
    PyObject *values_obj, *plan_obj;
    unsigned long schema_id;
    Py_ssize_t ncols;
    if (!PyArg_ParseTuple(args, "O!kO!n:wire_rows", &PyList_Type, &values_obj, &schema_id, &PyTuple_Type, &plan_obj, &ncols))
        return NULL;
    Plan p;
    Field fields[MAX_FIELDS];
    if (plan_of(plan_obj, ncols, &p, fields) < 0)
        return NULL;
    Value *values = values_for(&p);
    PyObject *rows = PyList_New(0), *handed_back = PyList_New(0);
    if (!values || !rows || !handed_back)
        goto fail;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(values_obj); r++)
        if (wire_value(PyList_GET_ITEM(values_obj, r), r, schema_id, &p, values, rows, handed_back) < 0)
            goto fail;
    PyMem_Free(values);
    return Py_BuildValue("NN", rows, handed_back);
fail:
    PyMem_Free(values);
    Py_XDECREF(rows);
    Py_XDECREF(handed_back);
    return NULL;
}

/* The `count` rows of a block's records into rows (a new list of count items): 1, 0 handed back, -1 error. */
static int block_into_rows(Input *in, Py_ssize_t count, const Plan *p, Value *values, PyObject *rows) {
    int got = 1;
    for (Py_ssize_t r = 0; got > 0 && r < count; r++) {
        PyObject *row;
        got = read_row(in, p, values, &row);
        if (got > 0)
            PyList_SET_ITEM(rows, r, row);
    }
    return got > 0 && in->pos != in->n ? 0 : got; /* bytes after the last record: handed back */
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
    Value *values = NULL;
    Input in = {data.buf, (size_t)data.len, 0};
    int got = plan_of(plan_obj, ncols, &p, fields) < 0 || !(values = values_for(&p)) ? -1 : 1;
    if (got > 0 && (count < 0 || count > data.len))
        got = 0; /* every record takes a byte at least: not a block fastavro reads either */
    if (got > 0 && !(rows = PyList_New(count)))
        got = -1;
    if (got > 0)
        got = block_into_rows(&in, count, &p, values, rows);
    PyMem_Free(values);
    PyBuffer_Release(&data);
    if (got > 0)
        return rows;
    Py_XDECREF(rows);
    if (got < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The `count` records of a block at in, as the layout says, into out: 1, 0 (one is odd, or bytes
 * are left after the last), -1 error. */
static int block_into_records(Input *in, Py_ssize_t count, const Plan *p, const Layout *l, Value *values, Buffer *out) {
    if (count < 0 || (size_t)count > in->n)
        return 0; /* every record takes a byte at least: not a block fastavro reads either */
    if (grow(out, 2 * in->n + (size_t)count * 16) < 0) /* about what the records take: no copy on the way */
        return -1;
    for (Py_ssize_t r = 0; r < count; r++) {
        int got = read_values(in, p, values);
        if (got > 0)
            got = put_record(out, l, values);
        if (got <= 0)
            return got;
    }
    return in->pos == in->n;
}

/*
 * block_records(data, count, plan, ncols, key_index, required, parts[, avro]) -> bytes, or None
 *
 * What block_rows, the validate filter's `required` checks, add_columns and the Kafka output make of
 * the `count` records of an Avro container block (data: its decompressed bytes), without the rows in
 * between: each record becomes a Kafka record written as a native uint32 key length, a uint32 value
 * length, the key, the value (pipelines.native.fused.EncodedRecords, which produce_records reads).
 * The plan and ncols are block_rows's. The key is the column key_index (a string column); the
 * `required` columns (indexes) must be neither null nor empty. `parts` gives the value: for each
 * output column, ('"name":' bytes, with ',' before all but the first; then a column index, or the
 * constant's JSON as bytes), written as orjson.dumps of the row's dict writes it.
 *
 * With `avro` = (header, codes), the values are Avro records in the Confluent wire format instead:
 * `header` (magic byte and schema id), then each part in the record schema's order, its label
 * b"": a constant's Avro bytes, or the column's value written as codes[j] = (code, null_branch,
 * value_branch), as pipelines/native/_avrowrite.c writes a row's (0 string, 1 long, 2 int,
 * 3 double, 4 float, 5 boolean, 6 timestamp-micros, 7 timestamp-millis).
 *
 * Whole blocks or nothing: None when any record is one block_rows hands back, has a null or empty
 * key or a missing required value, or a value not written exactly as the Python path writes it
 * (a float orjson writes otherwise than repr, an int past an Avro int, ...), or when bytes are left
 * after the last record. The caller then reads the block into rows, and its errors are reported
 * as before.
 */
static PyObject *block_records(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t count;
    PyObject *plan_obj, *required_obj, *parts_obj, *avro = Py_None, *result = NULL;
    Plan p;
    Layout l = {.header = NULL};
    if (!PyArg_ParseTuple(args, "y*nO!nnO!O!|O:block_records", &data, &count, &PyTuple_Type, &plan_obj, &l.ncols, &l.key_index,
                          &PyTuple_Type, &required_obj, &PyTuple_Type, &parts_obj, &avro))
        return NULL;
    Field fields[MAX_FIELDS];
    int required[MAX_FIELDS]; /* read once the plan has checked ncols (at most its fields) */
    l.nparts = PyTuple_GET_SIZE(parts_obj);
    Part parts[l.nparts > 0 ? l.nparts : 1];
    Value *values = NULL;
    Buffer out = {NULL, 0, 0};
    Input in = {data.buf, (size_t)data.len, 0};
    int got = -1;
    if (plan_of(plan_obj, l.ncols, &p, fields) == 0 && layout_of(required_obj, parts_obj, avro, &l, required, parts) == 0 &&
        (values = values_for(&p)))
        got = block_into_records(&in, count, &p, &l, values, &out);
    if (got > 0)
        result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
    else if (got == 0)
        result = Py_NewRef(Py_None);
    PyMem_Free(out.data);
    PyMem_Free(values);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"wire_rows", wire_rows, METH_VARARGS, "Confluent wire-format Avro values as typed rows (see the source)"},
    {"block_rows", block_rows, METH_VARARGS, "an Avro container block's records as typed rows (see the source)"},
    {"block_records", block_records, METH_VARARGS, "an Avro container block's records as Kafka records (see the source)"},
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
