/* io.h — the io stage: readers and writers for the file formats Graft touches. Every reader checks
 * every field before using it and names the file (and tensor) in its errors; every writer writes
 * aside and renames. */
#ifndef GRAFT_IO_H
#define GRAFT_IO_H

#include "base.h"

#include <stdint.h>

/* ---- safetensors: 8-byte little-endian header length, JSON header, raw data ---- */
typedef enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int rank;
    int64_t shape[8];
    uint64_t begin, end; /* byte offsets into the data section, validated */
} st_tensor;

typedef struct st_file {
    char *path;
    int ntensors;
    st_tensor *tensors;
    int nmeta;
    char **meta_keys, **meta_values; /* __metadata__ (string to string) */
    uint64_t data_offset;            /* 8 + header length */
    uint64_t file_size;
    const void *mem;                 /* st_open_mem: the whole file in memory (not owned) */
} st_file;

/* Open and validate the header (lengths, JSON, dtypes, shapes vs byte sizes, offsets in range and
 * not overlapping). Reads no tensor data. */
graft_status st_open(const char *path, st_file **out, graft_error *e);
/* The same validation over a file already in memory (fuzzing, tests); data must outlive f. name is
 * used in messages. */
graft_status st_open_mem(const char *name, const void *data, size_t len, st_file **out,
                         graft_error *e);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key);
/* Read a tensor converted to float32 (F32, F16, BF16, F64 and integer dtypes). out holds
 * the tensor's element count. */
graft_status st_read_f32(const st_file *f, const st_tensor *t, float *out, graft_error *e);
void st_close(st_file *f);
size_t st_tensor_count(const st_tensor *t); /* product of the shape (1 for a scalar) */
float st_half_to_float(uint16_t h);         /* IEEE binary16 → binary32, exact */
const char *st_dtype_name(st_dtype t);

typedef struct st_out_tensor {
    const char *name;
    int rank;
    int64_t shape[4];
    const float *data; /* host float32, element count = product of shape */
} st_out_tensor;
/* Write F32 tensors and string metadata (meta_kv = key, value, key, value, ...) atomically. */
graft_status st_write(const char *path, const st_out_tensor *t, int n, const char *const *meta_kv,
                      int nmeta, graft_error *e);
/* The same file's bytes in memory (*out malloc'ed, *out_len bytes); path names it in errors. */
graft_status st_encode(const char *path, const st_out_tensor *t, int n, const char *const *meta_kv,
                       int nmeta, char **out, size_t *out_len, graft_error *e);

/* ---- NPY (version 1.0/2.0/3.0, C order, little-endian) ---- */
typedef struct npy_array {
    char kind;  /* 'f' float, 'i' signed int, 'u' unsigned int, 'b' bool */
    int itemsize;
    int rank;
    int64_t shape[8];
    size_t count;
    void *data; /* count * itemsize bytes, host order */
} npy_array;
graft_status npy_read(const char *path, npy_array *out, graft_error *e);
/* The header only (kind, itemsize, rank, shape, count; data NULL), checked as npy_read checks it
 * (the data's length included). */
graft_status npy_read_header(const char *path, npy_array *out, graft_error *e);
/* The rows (entries along the first dimension) that keep[] marks, packed in file order, and only
 * those read from the file; nkeep must be the file's row count. shape[0] and count describe what
 * is stored (the kept rows). */
graft_status npy_read_rows(const char *path, const unsigned char *keep, size_t nkeep,
                           npy_array *out, graft_error *e);
graft_status npy_read_mem(const char *name, const void *data, size_t len, npy_array *out,
                          graft_error *e);
graft_status npy_write_f32(const char *path, const float *data, int rank, const int64_t *shape,
                           graft_error *e);
void npy_free(npy_array *a);

/* ---- IDX (MNIST format), raw or gzip-compressed (detected by magic) ---- */
typedef struct idx_array {
    int type; /* 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64 */
    int rank;
    int64_t shape[8];
    size_t count; /* elements stored */
    size_t rows;  /* rows (entries along the first dimension) stored: shape[0], or the kept ones */
    void *data;   /* converted to host order */
} idx_array;
graft_status idx_read(const char *path, idx_array *out, graft_error *e);
/* The header only (type, rank, shape; data NULL), checked as idx_read checks it; a gzip file is
 * inflated only as far as the header. */
graft_status idx_read_header(const char *path, idx_array *out, graft_error *e);
/* Only the rows i (along the first dimension) with keep[i] != 0, packed in file order; nkeep
 * must equal shape[0]. A gzip file is still inflated to its end (and checked like idx_read does),
 * but the other rows are neither stored nor converted. */
graft_status idx_read_rows(const char *path, const unsigned char *keep, size_t nkeep,
                           idx_array *out, graft_error *e);
graft_status idx_read_mem(const char *name, const void *data, size_t len, idx_array *out,
                          graft_error *e);
void idx_free(idx_array *a);

/* ---- CSV: numeric rows, one label column; an optional header row is detected and skipped ---- */
typedef struct csv_table {
    long rows;
    int features;   /* columns minus the label column */
    float *x;       /* rows * features */
    int *labels;    /* rows */
} csv_table;
graft_status csv_read(const char *path, int label_column, csv_table *out, graft_error *e);
graft_status csv_read_mem(const char *name, const void *data, size_t len, int label_column,
                          csv_table *out, graft_error *e);
void csv_free(csv_table *t);

#endif
