/*
 * The Kafka hot loops in C.
 *
 * produce_json: the Kafka output's; a batch of rows becomes JSON values, keyed and partitioned
 * like the Java client (murmur2), produced with one librdkafka call each, and counted per
 * partition, with no Python call per row.
 *
 * split_messages: the Kafka input's; a consumed batch of confluent_kafka Messages becomes lists of
 * values, offsets and keys (end markers and other jobs' records left out, tombstones set apart).
 *
 * It produces through the rd_kafka_t of a confluent_kafka.Producer (the first field after the
 * object header of its Handle), so that producer's transactions, flush and callbacks stay in
 * charge. Each message carries the per-message state confluent_kafka's delivery callback expects
 * (its struct Producer_msgstate: the producer, then the callback; allocated with calloc, which
 * that callback frees), so a failed delivery reaches the output's on_delivery as with
 * Producer.produce. The producer is made with delivery.report.only.error: rows are counted per
 * partition here as they are produced, and only failures come back. With on_delivery None (a
 * transactional producer), messages carry no state: confluent_kafka's callback then returns at
 * once for each, without taking the GIL, and a failed delivery fails the transaction's commit
 * (librdkafka flushes, and any message that failed makes the transaction abortable).
 *
 * librdkafka is not linked: `bind(path)` finds its functions in the copy confluent_kafka has
 * already loaded into the process, so this builds with nothing but Python's headers.
 *
 * The Handle's first field and struct Producer_msgstate are confluent_kafka's private layout, which
 * any release may change. setup.py passes CONFLUENT_KAFKA_VERIFIED, the version pinned in
 * container/constraints.txt (the one the tests check this against), and the import fails with an
 * ImportError while another confluent_kafka is installed, before anything reads its objects: the
 * Python loops then run (pipelines/native/compiled.py says so once). The whole module refuses, though
 * split_messages, with_errors and murmur2 use only Python's API (consume takes the consumer's
 * rd_kafka_t from the same private Handle).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include "_common.h"
#include "_isoformat.h"
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "_jsonwrite.h"

#ifndef CONFLUENT_KAFKA_VERIFIED
#error "CONFLUENT_KAFKA_VERIFIED (the confluent-kafka version whose layout this reads) is set by setup.py"
#endif

/* librdkafka's producev() argument types (rd_kafka_vtype_t) and the codes used here. */
enum { V_END = 0, V_TOPIC = 1, V_PARTITION = 3, V_VALUE = 4, V_KEY = 5, V_OPAQUE = 6, V_MSGFLAGS = 7, V_HEADER = 9 };
#define MSG_F_COPY 0x2
#define ERR_QUEUE_FULL (-184)
#define RD_KAFKA_CONSUMER 1

typedef int (*producev_fn)(void *rk, ...);
typedef const char *(*err2str_fn)(int err);
typedef const char *(*name_fn)(const void *rk);
typedef int (*type_fn)(const void *rk);

/* librdkafka's public rd_kafka_message_t */
typedef struct {
    int err;
    void *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private;
} Message;

typedef void *(*queue_get_consumer_fn)(void *rk);
typedef void *(*queue_get_main_fn)(void *rk);
typedef void (*queue_forward_fn)(void *src, void *dst);
typedef void (*queue_destroy_fn)(void *rkqu);
typedef Py_ssize_t (*consume_batch_queue_fn)(void *rkqu, int timeout_ms, Message **messages, size_t size);
typedef void (*message_destroy_fn)(Message *m);
typedef int (*message_headers_fn)(const Message *m, void **headers);
typedef int (*header_get_fn)(const void *headers, size_t idx, const char *name, const void **value, size_t *size);

static producev_fn rk_producev;
static err2str_fn rk_err2str;
static name_fn rk_name;
static type_fn rk_type;
static queue_get_consumer_fn rk_queue_get_consumer;
static queue_get_main_fn rk_queue_get_main;
static queue_forward_fn rk_queue_forward;
static queue_destroy_fn rk_queue_destroy;
static consume_batch_queue_fn rk_consume_batch_queue;
static message_destroy_fn rk_message_destroy;
static message_headers_fn rk_message_headers;
static header_get_fn rk_header_get;

typedef struct {
    PyObject_HEAD
    void *rk;
} HandleHead;

/* confluent_kafka's struct Producer_msgstate {Handle *self; PyObject *dr_cb;}, with room to spare (zeros). */
#define MSGSTATE_WORDS 4

static void **msgstate_new(PyObject *producer, PyObject *on_delivery) {
    void **state = calloc(MSGSTATE_WORDS, sizeof(void *));
    if (!state)
        return NULL;
    state[0] = producer;
    state[1] = on_delivery;
    Py_INCREF(on_delivery);
    return state;
}

static void msgstate_free(void **state) {
    Py_DECREF((PyObject *)state[1]);
    free(state);
}

/* ---- the JSON value being written, in a buffer reused across calls (the GIL is held throughout) ---- */

static Buffer value_buf;

/* n bytes of s appended to the value: 0, or -1 with a MemoryError. */
static int put(const char *s, size_t n) {
    return add(&value_buf, s, n);
}

/* ---- Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) ---- */

static int32_t murmur2(const unsigned char *data, size_t len) {
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t end = len & ~(size_t)3;
    for (size_t i = 0; i < end; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3: h ^= (uint32_t)data[end + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[end + 1] << 8; /* fall through */
    case 1: h ^= data[end]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

static PyObject *py_murmur2(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int32_t h = murmur2(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLong(h);
}

/* ---- binding to the loaded librdkafka, and to a producer ---- */

static PyObject *py_bind(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path)
        return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) {
        PyErr_Format(PyExc_OSError, "librdkafka is not loaded from %s", path);
        return NULL;
    }
    rk_producev = (producev_fn)dlsym(lib, "rd_kafka_producev");
    rk_err2str = (err2str_fn)dlsym(lib, "rd_kafka_err2str");
    rk_name = (name_fn)dlsym(lib, "rd_kafka_name");
    rk_type = (type_fn)dlsym(lib, "rd_kafka_type");
    rk_queue_get_consumer = (queue_get_consumer_fn)dlsym(lib, "rd_kafka_queue_get_consumer");
    rk_queue_get_main = (queue_get_main_fn)dlsym(lib, "rd_kafka_queue_get_main");
    rk_queue_forward = (queue_forward_fn)dlsym(lib, "rd_kafka_queue_forward");
    rk_queue_destroy = (queue_destroy_fn)dlsym(lib, "rd_kafka_queue_destroy");
    rk_consume_batch_queue = (consume_batch_queue_fn)dlsym(lib, "rd_kafka_consume_batch_queue");
    rk_message_destroy = (message_destroy_fn)dlsym(lib, "rd_kafka_message_destroy");
    rk_message_headers = (message_headers_fn)dlsym(lib, "rd_kafka_message_headers");
    rk_header_get = (header_get_fn)dlsym(lib, "rd_kafka_header_get");
    if (!rk_producev || !rk_err2str || !rk_name || !rk_type || !rk_queue_get_consumer || !rk_queue_get_main || !rk_queue_forward ||
        !rk_queue_destroy || !rk_consume_batch_queue || !rk_message_destroy || !rk_message_headers || !rk_header_get) {
        rk_producev = NULL;
        PyErr_Format(PyExc_OSError, "%s lacks one of the librdkafka functions used here", path);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The rd_kafka_t of a confluent_kafka Producer or Consumer (the first field of its Handle), or NULL with an error. */
static void *client_handle(PyObject *client) {
    if (!rk_producev) {
        PyErr_SetString(PyExc_RuntimeError, "bind() librdkafka first");
        return NULL;
    }
    void *rk = ((HandleHead *)client)->rk;
    if (!rk) {
        PyErr_SetString(PyExc_RuntimeError, "the producer is closed");
        return NULL;
    }
    return rk;
}

/* The rd_kafka_t of a confluent_kafka Consumer, or NULL with an error (a TypeError for another client's). */
static void *consumer_handle(PyObject *consumer) {
    void *rk = client_handle(consumer);
    if (rk && rk_type(rk) != RD_KAFKA_CONSUMER) {
        PyErr_SetString(PyExc_TypeError, "not a consumer's handle");
        return NULL;
    }
    return rk;
}

/* handle_name(client): librdkafka's name of a Producer's or Consumer's handle ("<client.id>#producer-N"), to check the handle. */
static PyObject *py_handle_name(PyObject *self, PyObject *client) {
    void *rk = client_handle(client);
    if (!rk)
        return NULL;
    return PyUnicode_FromString(rk_name(rk));
}

/*
 * detach_error_events(consumer): keeps librdkafka's error events (a broker's connection lost, all
 * brokers down: what a broker restart gives) off the consumer's queue, which `consume` serves.
 * confluent_kafka forwards the handle's main queue to the consumer's queue and serves those events
 * with its error callback, which may only run inside one of its own calls (served by `consume`, it
 * aborts the process: "CallState_get: Assertion 'cs != NULL'"). With the forward undone they wait,
 * unread, on the main queue until the consumer closes. Call it before anything is assigned.
 */
static PyObject *py_detach_error_events(PyObject *self, PyObject *consumer) {
    void *rk = consumer_handle(consumer);
    if (!rk)
        return NULL;
    void *main_queue = rk_queue_get_main(rk);
    if (!main_queue) {
        PyErr_SetString(PyExc_RuntimeError, "the consumer has no main queue");
        return NULL;
    }
    rk_queue_forward(main_queue, NULL);
    rk_queue_destroy(main_queue);
    Py_RETURN_NONE;
}

/* counts[p] += added[p] for every partition */
static int add_counts(PyObject *counts, const long long *added, Py_ssize_t partitions) {
    for (Py_ssize_t p = 0; p < partitions; p++) {
        if (!added[p])
            continue;
        PyObject *more = PyLong_FromLongLong(added[p]);
        PyObject *total = more ? PyNumber_Add(PyList_GET_ITEM(counts, p), more) : NULL;
        Py_XDECREF(more);
        if (!total)
            return -1;
        PyList_SetItem(counts, p, total);
    }
    return 0;
}

/* The producer's rd_kafka_t for the produce loops, once on_delivery checks out; NULL with an error. */
static void *sending_handle(PyObject *producer, PyObject *on_delivery) {
    if (on_delivery != Py_None && !PyCallable_Check(on_delivery)) {
        PyErr_SetString(PyExc_TypeError, "on_delivery must be callable or None");
        return NULL;
    }
    return client_handle(producer);
}

/* Where and how a batch's records go, for send_record. */
typedef struct {
    void *rk;
    PyObject *producer, *on_delivery;
    const char *topic, *header_name, *header_value;
    Py_ssize_t header_len, partitions;
    long long *added; /* records produced, per partition */
} Sending;

/* One record produced, in the partition murmur2(key) gives, with the header and confluent_kafka's
 * per-message state: 1 done, 0 librdkafka's queue is full, -1 an error is set. */
static int send_record(const Sending *s, const char *key, size_t key_len, const void *value, size_t value_len) {
    int32_t partition = (int32_t)((uint32_t)murmur2((const unsigned char *)key, key_len) & 0x7fffffffu) % (int32_t)s->partitions;
    void **state = NULL;
    if (s->on_delivery != Py_None && !(state = msgstate_new(s->producer, s->on_delivery))) {
        PyErr_NoMemory();
        return -1;
    }
    int err = s->header_name[0] /* an empty header name: no header (measuring its cost only) */
                  ? rk_producev(s->rk, V_TOPIC, s->topic, V_PARTITION, partition, V_KEY, (void *)key, key_len, V_VALUE,
                                (void *)value, value_len, V_MSGFLAGS, MSG_F_COPY, V_HEADER, s->header_name,
                                (const void *)s->header_value, s->header_len, V_OPAQUE, (void *)state, V_END)
                  : rk_producev(s->rk, V_TOPIC, s->topic, V_PARTITION, partition, V_KEY, (void *)key, key_len, V_VALUE,
                                (void *)value, value_len, V_MSGFLAGS, MSG_F_COPY, V_OPAQUE, (void *)state, V_END);
    if (err && state)
        msgstate_free(state);
    if (err == ERR_QUEUE_FULL)
        return 0;
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "cannot produce: %s", rk_err2str(err));
        return -1;
    }
    s->added[partition]++;
    return 1;
}

/* The produce loops' end: counts[p] += added[p], also after a failure (failed: its error is kept; the
 * records produced before it still count, and the caller aborts the transaction anyway). 0, or -1 with an error. */
static int settle_counts(PyObject *counts, const long long *added, Py_ssize_t partitions, int failed) {
    if (!failed)
        return add_counts(counts, added, partitions);
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    if (add_counts(counts, added, partitions) < 0)
        PyErr_Clear();
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return -1;
}

/* A column of produce_json's values: the row index it is read from, and its '"name":' bytes. */
typedef struct {
    Py_ssize_t index;
    const char *name;
    Py_ssize_t name_len;
} ValueColumn;

/* How produce_json writes a row: where its key is, its value's columns, and the fallback writer. */
typedef struct {
    Py_ssize_t key_index, ncols;
    const ValueColumn *cols;
    PyObject *fallback;
} RowFormat;

/* How produce_row ended: librdkafka's queue is full; produced; not produced, its key None or "" (-1: an error). */
enum { ROW_QUEUE_FULL = 0, ROW_PRODUCED = 1, ROW_EMPTY_KEY = 2 };

/* value_indexes (ints) and names (bytes) into cols: 0, or -1 with a TypeError. */
static int read_value_columns(PyObject *value_indexes, PyObject *names, ValueColumn *cols) {
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(value_indexes); j++) {
        cols[j].index = PyLong_AsSsize_t(PyTuple_GET_ITEM(value_indexes, j));
        PyObject *name = PyTuple_GET_ITEM(names, j);
        if ((cols[j].index < 0 && PyErr_Occurred()) || !PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "value_indexes are ints and names bytes");
            return -1;
        }
        cols[j].name = PyBytes_AS_STRING(name);
        cols[j].name_len = PyBytes_GET_SIZE(name);
    }
    return 0;
}

/* The row's JSON object {name: value, ...} written as the value (from empty): 0, or -1 with an error. */
static int put_row_value(const RowFormat *f, PyObject *row, Py_ssize_t width) {
    value_buf.len = 0;
    if (put("{", 1) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < f->ncols; j++) {
        if (f->cols[j].index >= width) {
            PyErr_SetString(PyExc_IndexError, "a value index is past the row's end");
            return -1;
        }
        if (put(f->cols[j].name, (size_t)f->cols[j].name_len) < 0 || json_value(&value_buf, PyList_GET_ITEM(row, f->cols[j].index), f->fallback) < 0)
            return -1;
    }
    return put("}", 1);
}

/* One row produced, keyed by its key (str() of one that is not a str), with its JSON value:
 * ROW_PRODUCED, ROW_EMPTY_KEY, ROW_QUEUE_FULL, or -1 with an error. */
static int produce_row(const Sending *s, const RowFormat *f, PyObject *row) {
    if (!PyList_Check(row)) {
        PyErr_SetString(PyExc_TypeError, "rows must be lists");
        return -1;
    }
    Py_ssize_t width = PyList_GET_SIZE(row);
    if (f->key_index >= width) {
        PyErr_SetString(PyExc_IndexError, "key_index is past the row's end");
        return -1;
    }
    PyObject *key = PyList_GET_ITEM(row, f->key_index);
    if (key == Py_None || (PyUnicode_Check(key) && PyUnicode_GET_LENGTH(key) == 0))
        return ROW_EMPTY_KEY;
    PyObject *key_text = PyUnicode_Check(key) ? Py_NewRef(key) : PyObject_Str(key);
    if (!key_text)
        return -1;
    Py_ssize_t key_len;
    const char *key_bytes = PyUnicode_AsUTF8AndSize(key_text, &key_len);
    int sent = -1;
    if (key_bytes && put_row_value(f, row, width) == 0)
        sent = send_record(s, key_bytes, (size_t)key_len, value_buf.data, value_buf.len);
    Py_DECREF(key_text);
    return sent;
}

/*
 * produce_json(producer, topic, rows, start, key_index, value_indexes, names, header_name,
 *              header_value, counts, fallback, on_delivery) -> (next, produced, empty_keys)
 *
 * Produces rows[start:] (lists) as JSON objects {names[j]: row[value_indexes[j]]}: `names[j]`
 * is the bytes '"name":' (with a leading ',' after the first). The key is row[key_index] (str;
 * other values as str()); a row whose key is None or "" is not produced and its position is
 * returned in empty_keys. The partition is murmur2(key) made positive modulo len(counts), and
 * counts[partition] is increased for each row produced. Values other than str, int, float,
 * bool, None and datetimes (naive or UTC) are written by `fallback(value) -> bytes`. A failed
 * delivery calls on_delivery(err, msg) (from poll or flush), as Producer.produce(on_delivery=) would;
 * with on_delivery None, it fails the transaction instead (see the top of this file).
 * `next` < len(rows) when librdkafka's queue is full: poll, then call again from `next`.
 */
static PyObject *py_produce_json(PyObject *self, PyObject *args) {
    PyObject *producer, *rows, *value_indexes, *names, *counts, *fallback, *on_delivery;
    const char *topic, *header_name, *header_value;
    Py_ssize_t start, key_index, header_len;
    if (!PyArg_ParseTuple(args, "OyO!nnO!O!yy#O!OO:produce_json", &producer, &topic, &PyList_Type, &rows, &start,
                          &key_index, &PyTuple_Type, &value_indexes, &PyTuple_Type, &names, &header_name,
                          &header_value, &header_len, &PyList_Type, &counts, &fallback, &on_delivery))
        return NULL;
    void *rk = sending_handle(producer, on_delivery);
    if (!rk)
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(value_indexes), partitions = PyList_GET_SIZE(counts);
    if (PyTuple_GET_SIZE(names) != ncols || partitions < 1) {
        PyErr_SetString(PyExc_ValueError, "names must match value_indexes, and counts have one entry per partition");
        return NULL;
    }
    ValueColumn cols[ncols > 0 ? ncols : 1];
    if (read_value_columns(value_indexes, names, cols) < 0)
        return NULL;
    long long added[partitions];
    memset(added, 0, sizeof added);
    Sending sending = {rk, producer, on_delivery, topic, header_name, header_value, header_len, partitions, added};
    RowFormat format = {key_index, ncols, cols, fallback};
    PyObject *empty_keys = PyList_New(0);
    if (!empty_keys)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows), i = start, produced = 0;
    int sent = ROW_PRODUCED;
    for (; i < n; i++) {
        sent = produce_row(&sending, &format, PyList_GET_ITEM(rows, i));
        if (sent == ROW_EMPTY_KEY && append_new(empty_keys, PyLong_FromSsize_t(i)) < 0)
            sent = -1;
        if (sent < 0 || sent == ROW_QUEUE_FULL)
            break;
        produced += sent == ROW_PRODUCED;
    }
    if (settle_counts(counts, added, partitions, sent < 0) < 0) {
        Py_DECREF(empty_keys);
        return NULL;
    }
    return Py_BuildValue("nnN", i, produced, empty_keys);
}

/* ---- consumed batches (the Kafka input's) ---- */

/* What split_messages and consume give: the values, offsets and keys of a batch's records, and the tombstones' offsets. */
typedef struct {
    PyObject *values, *offsets, *keys, *tombstones;
} Split;

/* The four lists made, empty: 0, or -1 with an error (split_clear releases those made). */
static int split_new(Split *s) {
    s->values = PyList_New(0);
    s->offsets = PyList_New(0);
    s->keys = PyList_New(0);
    s->tombstones = PyList_New(0);
    return s->values && s->offsets && s->keys && s->tombstones ? 0 : -1;
}

/* The four lists released. */
static void split_clear(Split *s) {
    Py_XDECREF(s->values);
    Py_XDECREF(s->offsets);
    Py_XDECREF(s->keys);
    Py_XDECREF(s->tombstones);
}

/* A record's value, offset and key appended: 0, or -1 with an error. */
static int split_add(Split *s, PyObject *value, PyObject *offset, PyObject *key) {
    int ok = PyList_Append(s->values, value) == 0 && PyList_Append(s->offsets, offset) == 0 && PyList_Append(s->keys, key) == 0;
    return ok ? 0 : -1;
}

/* The names of the Message methods split_messages and with_errors call, interned once. */
static PyObject *s_key, *s_value, *s_offset, *s_headers, *s_error;

/* The method names interned (once): 0, or -1 with an error. */
static int intern_method_names(void) {
    if (s_error)
        return 0;
    s_key = PyUnicode_InternFromString("key");
    s_value = PyUnicode_InternFromString("value");
    s_offset = PyUnicode_InternFromString("offset");
    s_headers = PyUnicode_InternFromString("headers");
    if (s_key && s_value && s_offset && s_headers)
        s_error = PyUnicode_InternFromString("error");
    return s_error ? 0 : -1;
}

/* Whether split_messages leaves a Message out: an end marker (`marker` among its headers) or, with
 * `job`, a record without it (or without headers): 1, 0, or -1 with an error. */
static int left_out(PyObject *message, PyObject *marker, PyObject *job) {
    PyObject *headers = PyObject_CallMethodNoArgs(message, s_headers);
    if (!headers)
        return -1;
    int skip = job != Py_None;
    if (headers != Py_None) {
        int is_marker = PySequence_Contains(headers, marker);
        int of_job = job == Py_None ? 1 : PySequence_Contains(headers, job);
        skip = is_marker < 0 || of_job < 0 ? -1 : is_marker || !of_job;
    }
    Py_DECREF(headers);
    return skip;
}

/* A kept Message's offset into the tombstones (it has no value), or its value, offset and key into s: 0, or -1 with an error. */
static int split_add_message(Split *s, PyObject *message, PyObject *key) {
    PyObject *offset = PyObject_CallMethodNoArgs(message, s_offset);
    PyObject *value = offset ? PyObject_CallMethodNoArgs(message, s_value) : NULL;
    int rc = -1;
    if (value == Py_None)
        rc = PyList_Append(s->tombstones, offset);
    else if (value)
        rc = split_add(s, value, offset, key);
    Py_XDECREF(offset);
    Py_XDECREF(value);
    return rc;
}

/* One Message into s, unless it is left out (end markers have no key, or an empty one on a compacted
 * topic: only such records' headers are read, and every record's with a job): 0, or -1 with an error. */
static int split_message(Split *s, PyObject *message, PyObject *marker, PyObject *job) {
    PyObject *key = PyObject_CallMethodNoArgs(message, s_key);
    if (!key)
        return -1;
    int keyless = key == Py_None || (PyBytes_Check(key) && PyBytes_GET_SIZE(key) == 0);
    int skip = job != Py_None || keyless ? left_out(message, marker, job) : 0;
    int rc = skip < 0 ? -1 : skip ? 0 : split_add_message(s, message, key);
    Py_DECREF(key);
    return rc;
}

/*
 * split_messages(messages, marker, job) -> (values, offsets, keys, tombstones)
 *
 * For each confluent_kafka Message: a record whose headers hold `marker` (a (name, value) tuple;
 * end markers have no key or an empty one, so only such records' headers are read), or, with `job` (a tuple,
 * or None), whose headers do not hold `job`, is left out; a record without a value (a tombstone)
 * has its offset in `tombstones`; the others give their value, offset and key.
 */
static PyObject *py_split_messages(PyObject *self, PyObject *args) {
    PyObject *messages, *marker, *job;
    if (!PyArg_ParseTuple(args, "O!OO:split_messages", &PyList_Type, &messages, &marker, &job))
        return NULL;
    if (intern_method_names() < 0)
        return NULL;
    Split s;
    if (split_new(&s) < 0)
        goto fail;
    Py_ssize_t n = PyList_GET_SIZE(messages);
    for (Py_ssize_t i = 0; i < n; i++)
        if (split_message(&s, PyList_GET_ITEM(messages, i), marker, job) < 0)
            goto fail;
    return Py_BuildValue("NNNN", s.values, s.offsets, s.keys, s.tombstones);
fail:
    split_clear(&s);
    return NULL;
}

/* with_errors(messages) -> [i, ...]: the positions of the Messages whose error() is not None */
static PyObject *py_with_errors(PyObject *self, PyObject *messages) {
    if (intern_method_names() < 0)
        return NULL;
    if (!PyList_Check(messages)) {
        PyErr_SetString(PyExc_TypeError, "messages must be a list");
        return NULL;
    }
    PyObject *found = PyList_New(0);
    if (!found)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(messages); i++) {
        PyObject *error = PyObject_CallMethodNoArgs(PyList_GET_ITEM(messages, i), s_error);
        if (!error)
            goto fail;
        int failed = error != Py_None;
        Py_DECREF(error);
        if (failed && append_new(found, PyLong_FromSsize_t(i)) < 0)
            goto fail;
    }
    return found;
fail:
    Py_DECREF(found);
    return NULL;
}

/* 1 if the message's headers hold (name, value), 0 if not, -1 error */
static int has_header(const Message *m, const char *name, const char *value, Py_ssize_t value_len) {
    void *headers;
    if (rk_message_headers(m, &headers) != 0)
        return 0;
    const void *v;
    size_t size;
    for (size_t i = 0; rk_header_get(headers, i, name, &v, &size) == 0; i++)
        if ((Py_ssize_t)size == value_len && (value_len == 0 || (v && memcmp(v, value, size) == 0)))
            return 1;
    return 0;
}

/* The records consume keeps: offsets below `end`, not end markers (marker_name: marker_value among the
 * headers of a record without a key, or with an empty one on a compacted topic) and, with job_name,
 * only those with the job's header. */
typedef struct {
    long long end;
    const char *marker_name, *marker_value, *job_name, *job_value;
    Py_ssize_t marker_len, job_len;
} Wanted;

/* Whether a consumed record is a row of this export: not an end marker, and of the job when one is given. */
static int of_export(const Message *m, const Wanted *w) {
    if (!w->job_name && m->key && m->key_len > 0)
        return 1;
    int marker = has_header(m, w->marker_name, w->marker_value, w->marker_len);
    int of_job = w->job_name ? has_header(m, w->job_name, w->job_value, w->job_len) : 1;
    return !marker && of_job;
}

/* An error event as (code, offset, text): its payload's text, or librdkafka's for the code. NULL with an error. */
static PyObject *error_item(const Message *m) {
    const char *text = rk_err2str(m->err);
    PyObject *item = m->payload ? Py_BuildValue("iLs#", m->err, (long long)m->offset, (const char *)m->payload, (Py_ssize_t)m->len)
                                : Py_BuildValue("iLs", m->err, (long long)m->offset, text);
    if (!item) { /* a payload that is not UTF-8 */
        PyErr_Clear();
        item = Py_BuildValue("iLs", m->err, (long long)m->offset, text);
    }
    return item;
}

/* A record's offset into the tombstones (it has no value), or its value, offset and key (None without one) into s: 0, or -1 with an error. */
static int split_add_record(Split *s, const Message *m) {
    PyObject *offset = PyLong_FromLongLong(m->offset);
    if (!offset)
        return -1;
    int rc = -1;
    if (!m->payload) {
        rc = PyList_Append(s->tombstones, offset);
    } else {
        PyObject *value = PyBytes_FromStringAndSize(m->payload, (Py_ssize_t)m->len);
        PyObject *key = m->key ? PyBytes_FromStringAndSize(m->key, (Py_ssize_t)m->key_len) : Py_NewRef(Py_None);
        if (value && key)
            rc = split_add(s, value, offset, key);
        Py_XDECREF(value);
        Py_XDECREF(key);
    }
    Py_DECREF(offset);
    return rc;
}

/* One consumed message taken: an error event into errors; a record's offset into *last (the highest
 * so far), and the record into s if it is wanted. 0, or -1 with an error. */
static int take_message(const Message *m, const Wanted *w, Split *s, PyObject *errors, long long *last) {
    if (m->err)
        return append_new(errors, error_item(m));
    if (m->offset > *last)
        *last = m->offset;
    if (m->offset >= w->end || !of_export(m, w))
        return 0;
    return split_add_record(s, m);
}

/* Up to n messages from the consumer's queue into batch, waiting at most timeout_ms, without the GIL: how many, or -1 with an error. */
static Py_ssize_t consume_batch(void *rk, int timeout_ms, Message **batch, Py_ssize_t n) {
    void *queue = rk_queue_get_consumer(rk);
    if (!queue) {
        PyErr_SetString(PyExc_RuntimeError, "not a consumer");
        return -1;
    }
    Py_ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = rk_consume_batch_queue(queue, timeout_ms, batch, (size_t)n);
    Py_END_ALLOW_THREADS
    rk_queue_destroy(queue);
    if (got < 0) {
        PyErr_SetString(PyExc_RuntimeError, "consuming failed");
        return -1;
    }
    return got;
}

/* consume's result of the consumed messages, each taken (take_message) and destroyed. */
static PyObject *split_batch(Message **batch, Py_ssize_t got, const Wanted *w) {
    Split s;
    PyObject *errors = PyList_New(0), *result = NULL;
    long long last = -1;
    int ok = split_new(&s) == 0 && errors;
    for (Py_ssize_t i = 0; i < got; i++) {
        if (ok)
            ok = take_message(batch[i], w, &s, errors, &last) == 0;
        rk_message_destroy(batch[i]);
    }
    if (ok)
        result = Py_BuildValue("(OOOO)OL", s.values, s.offsets, s.keys, s.tombstones, errors, last);
    split_clear(&s);
    Py_XDECREF(errors);
    return result;
}

/*
 * consume(consumer, n, timeout_ms, end, marker_name, marker_value, job_name, job_value)
 *   -> ((values, offsets, keys, tombstones), errors, last)
 *
 * One rd_kafka_consume_batch_queue on a confluent_kafka.Consumer's queue (made without callbacks
 * that would need Python: no logger, error_cb, oauth_cb; manual assignment), giving what
 * split_messages gives for the messages below offset `end`, without a Message object each:
 * errors are (code, offset, text) of the error events (partition EOF...), `last` the highest
 * offset of a message that is not an error (-1: none).
 */
static PyObject *py_consume(PyObject *self, PyObject *args) {
    PyObject *consumer;
    Py_ssize_t n;
    int timeout_ms;
    Wanted w = {0, NULL, NULL, NULL, NULL, 0, 0};
    if (!PyArg_ParseTuple(args, "OniLsy#zz#:consume", &consumer, &n, &timeout_ms, &w.end, &w.marker_name, &w.marker_value,
                          &w.marker_len, &w.job_name, &w.job_value, &w.job_len))
        return NULL;
    void *rk = consumer_handle(consumer);
    if (!rk)
        return NULL;
    if (n < 1)
        n = 1;
    Message **batch = PyMem_Malloc(sizeof(Message *) * (size_t)n);
    if (!batch)
        return PyErr_NoMemory();
    Py_ssize_t got = consume_batch(rk, timeout_ms, batch, n);
    PyObject *result = got < 0 ? NULL : split_batch(batch, got, &w);
    PyMem_Free(batch);
    return result;
}

/* The record encoded at data[offset:size] (encode_records's layout): its key's and value's lengths
 * into lengths, and the next record's offset; or -1 with a ValueError (truncated, no key). */
static Py_ssize_t encoded_record(const char *data, Py_ssize_t size, Py_ssize_t offset, uint32_t lengths[2]) {
    if (size - offset < 8) {
        PyErr_SetString(PyExc_ValueError, "produce_records: truncated data");
        return -1;
    }
    memcpy(lengths, data + offset, 8);
    Py_ssize_t next = offset + 8 + (Py_ssize_t)lengths[0] + (Py_ssize_t)lengths[1];
    if (next > size || lengths[0] == 0) {
        PyErr_SetString(PyExc_ValueError, "produce_records: a record is out of bounds or has no key");
        return -1;
    }
    return next;
}

/*
 * produce_records(producer, topic, data, offset, header_name, header_value, counts, on_delivery)
 *     -> (next_offset, produced)
 *
 * Produces the records encoded in data[offset:] (pipelines/native/_fastrows.c encode_records: a native
 * uint32 key length, a uint32 value length, the key, the value; keys never empty), partitioned
 * and counted as produce_json does, each with the header and the same per-message state.
 * next_offset < len(data) when librdkafka's queue is full: poll, then call again from it.
 */
static PyObject *py_produce_records(PyObject *self, PyObject *args) {
    PyObject *producer, *counts, *on_delivery;
    const char *topic, *header_name, *header_value, *data;
    Py_ssize_t offset, size, header_len;
    if (!PyArg_ParseTuple(args, "Oyy#nyy#O!O:produce_records", &producer, &topic, &data, &size, &offset, &header_name,
                          &header_value, &header_len, &PyList_Type, &counts, &on_delivery))
        return NULL;
    void *rk = sending_handle(producer, on_delivery);
    if (!rk)
        return NULL;
    Py_ssize_t partitions = PyList_GET_SIZE(counts), produced = 0;
    if (partitions < 1) {
        PyErr_SetString(PyExc_ValueError, "counts need one entry per partition");
        return NULL;
    }
    long long added[partitions];
    memset(added, 0, sizeof added);
    Sending sending = {rk, producer, on_delivery, topic, header_name, header_value, header_len, partitions, added};
    int sent = 1;
    while (offset < size) {
        uint32_t lengths[2];
        Py_ssize_t next = encoded_record(data, size, offset, lengths);
        if (next < 0) {
            sent = -1;
            break;
        }
        const char *key = data + offset + 8;
        sent = send_record(&sending, key, lengths[0], key + lengths[0], lengths[1]);
        if (sent <= 0)
            break;
        produced++;
        offset = next;
    }
    if (settle_counts(counts, added, partitions, sent < 0) < 0)
        return NULL;
    return Py_BuildValue("nn", offset, produced);
}

static PyMethodDef methods[] = {
    {"bind", py_bind, METH_O, "bind(path): use the librdkafka confluent_kafka loaded from path"},
    {"handle_name", py_handle_name, METH_O, "handle_name(client): librdkafka's name of a Producer's or Consumer's handle"},
    {"produce_json", py_produce_json, METH_VARARGS, "produce rows as JSON values (see the source)"},
    {"produce_records", py_produce_records, METH_VARARGS, "produce encoded records (see the source)"},
    {"split_messages", py_split_messages, METH_VARARGS, "a consumed batch as values, offsets, keys and tombstones (see the source)"},
    {"consume", py_consume, METH_VARARGS, "one batch from a consumer, split as split_messages splits it (see the source)"},
    {"with_errors", py_with_errors, METH_O, "with_errors(messages): the positions of messages with an error"},
    {"detach_error_events", py_detach_error_events, METH_O, "detach_error_events(consumer): error events off consume's queue (see the source)"},
    {"murmur2", py_murmur2, METH_O, "murmur2(data): Kafka's murmur2 of bytes, as a signed 32-bit int"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastkafka", "The Kafka input's and output's hot loops.", -1, methods,
                                    NULL, NULL, NULL, NULL};

/* 0 if the installed confluent_kafka is the version this was verified against; -1 with an ImportError
 * (another version) or the error of importing it. Only Python's API is used: no object is read.
 * The version is the one compiled into confluent_kafka.cimpl, the binary whose layout is read
 * (a str since 2.12, a (str, int) tuple before). */
static int check_confluent_kafka(void) {
    PyObject *cimpl = PyImport_ImportModule("confluent_kafka.cimpl");
    PyObject *info = cimpl ? PyObject_CallMethod(cimpl, "version", NULL) : NULL;
    Py_XDECREF(cimpl);
    if (!info)
        return -1;
    PyObject *text = PyTuple_Check(info) && PyTuple_GET_SIZE(info) > 0 ? PyTuple_GET_ITEM(info, 0) : info;
    const char *installed = text && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : NULL;
    int same = installed && strcmp(installed, CONFLUENT_KAFKA_VERIFIED) == 0;
    if (!same && !PyErr_Occurred())
        PyErr_Format(PyExc_ImportError,
                     "confluent-kafka %s is installed, but pipelines.native._fastkafka reads the private object "
                     "layout of confluent-kafka %s (the pin in container/constraints.txt): the compiled Kafka "
                     "loops are off and the Python loops run instead (pip install confluent-kafka==%s turns them on)",
                     installed ? installed : "of an unknown version", CONFLUENT_KAFKA_VERIFIED, CONFLUENT_KAFKA_VERIFIED);
    Py_DECREF(info);
    return same ? 0 : -1;
}

PyMODINIT_FUNC PyInit__fastkafka(void) {
    if (check_confluent_kafka() < 0)
        return NULL;
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "CONFLUENT_KAFKA_VERIFIED", CONFLUENT_KAFKA_VERIFIED) < 0)
        Py_CLEAR(m);
    return m;
}
