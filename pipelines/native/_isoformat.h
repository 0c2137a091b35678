/*
 * datetime.isoformat() of a naive or UTC datetime, shared by the compiled loops (_fastrows.c writes
 * it into CSV, _fastkafka.c into JSON, where orjson writes the same text). The includer has
 * included Python.h and datetime.h and run PyDateTime_IMPORT.
 */
#ifndef PIPELINES_ISOFORMAT_H
#define PIPELINES_ISOFORMAT_H

#include <string.h>

#define ISOFORMAT_MAX 32 /* "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" */

static void iso_two_digits(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Writes the text into out (ISOFORMAT_MAX bytes, no NUL) and returns its length; 0 for a time zone
 * other than UTC (the caller's Python path writes those). */
static size_t isoformat(char *out, PyObject *v) {
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC)
        return 0;
    int year = PyDateTime_GET_YEAR(v), us = PyDateTime_DATE_GET_MICROSECOND(v);
    char *p = out;
    p[0] = (char)('0' + year / 1000);
    p[1] = (char)('0' + year / 100 % 10);
    iso_two_digits(p + 2, year % 100);
    p += 4;
    *p++ = '-'; iso_two_digits(p, PyDateTime_GET_MONTH(v)); p += 2;
    *p++ = '-'; iso_two_digits(p, PyDateTime_GET_DAY(v)); p += 2;
    *p++ = 'T'; iso_two_digits(p, PyDateTime_DATE_GET_HOUR(v)); p += 2;
    *p++ = ':'; iso_two_digits(p, PyDateTime_DATE_GET_MINUTE(v)); p += 2;
    *p++ = ':'; iso_two_digits(p, PyDateTime_DATE_GET_SECOND(v)); p += 2;
    if (us) {
        *p++ = '.';
        for (int d = 100000; d; d /= 10)
            *p++ = (char)('0' + us / d % 10);
    }
    if (tz != Py_None) {
        memcpy(p, "+00:00", 6);
        p += 6;
    }
    return (size_t)(p - out);
}

#endif
