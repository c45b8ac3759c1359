/* test_csv.c — the CSV reader: header detection, blank lines, CRLF, quoted numbers, label column
 * from either end, and errors with FILE:LINE:COL for ragged rows, non-numbers and bad labels. */
#include "iotest.h"

static void test_good(void)
{
    csv_table t;
    /* header, blank lines, CRLF, spaces, quotes, scientific notation */
    const char *a = "f1, f2 ,f3,label\r\n\r\n1,2,3,0\r\n  4.5 , -6e-1,\"7\",2\r\n\n   \n8,9,10,1";
    CHECK_OK(csv_read_mem("a.csv", a, strlen(a), -1, &t, err));
    CHECK(t.rows == 3 && t.features == 3);
    if (t.rows == 3) {
        CHECK(t.x[0] == 1 && t.x[2] == 3 && t.x[3] == 4.5f && t.x[4] == -0.6f && t.x[5] == 7);
        CHECK(t.x[8] == 10);
        CHECK(t.labels[0] == 0 && t.labels[1] == 2 && t.labels[2] == 1);
    }
    csv_free(&t);
    /* no header; label first; label written as 3.0 */
    const char *b = "3.0,0.5,0.25\n1,1,2\n";
    const char *path = tmp_path("b.csv");
    write_bytes(path, b, strlen(b));
    CHECK_OK(csv_read(path, 0, &t, err));
    CHECK(t.rows == 2 && t.features == 2);
    if (t.rows == 2) CHECK(t.labels[0] == 3 && t.x[0] == 0.5f && t.x[1] == 0.25f && t.x[3] == 2);
    csv_free(&t);
    /* label column -2 = second to last */
    const char *c = "3,1,0.25\n1,0,2\n";
    CHECK_OK(csv_read_mem("c", c, strlen(c), -2, &t, err));
    CHECK(t.rows == 2);
    if (t.rows == 2) CHECK(t.labels[0] == 1 && t.labels[1] == 0 && t.x[0] == 3 && t.x[1] == 0.25f);
    csv_free(&t);
}

static const struct bad_case {
    const char *label, *text;
    int label_column;
    int line, col;
    const char *expect;
} bad[] = {
    {"ragged short", "a,b,c\n1,2,3\n4,5\n", -1, 3, 1, "expected 3 columns (as on line 1), found 2"},
    {"ragged long", "\n\n1,2,3\n4,5,6,7\n", -1, 4, 1, "expected 3 columns (as on line 3), found 4"},
    {"not a number", "1,2,3\n4,x5,6\n", -1, 2, 3, "column 2: 'x5' is not a number"},
    {"empty field", "1,2,3\n4,,6\n", -1, 2, 3, "column 2: '' is not a number"},
    {"nan", "1,2,3\n4,nan,6\n", -1, 2, 3, "'nan' is not a number"},
    {"inf", "1,2,3\n4,5,inf\n", 0, 2, 5, "'inf' is not a number"},
    {"label real", "1,2,3.5\n", -1, 1, 5, "label column 3: 3.5 is not an integer class label"},
    {"label column", "1,2,3\n", 3, 1, 1, "label_column 3 is outside the 3 columns"},
    {"label column neg", "1,2,3\n", -4, 1, 1, "label_column -4 is outside the 3 columns"},
    {"only label", "1\n2\n", 0, 1, 1, "only the label column"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *path = tmp_path("bad.csv");
        write_bytes(path, bad[i].text, strlen(bad[i].text));
        csv_table t;
        graft_error e = {0};
        CHECK_FAILS(csv_read(path, bad[i].label_column, &t, &e), e, GRAFT_STATUS_BAD_DATA,
                    bad[i].expect, bad[i].label);
        CHECKF(strcmp(e.file, path) == 0 && e.line == bad[i].line && e.col == bad[i].col,
               "%s: at %s:%d:%d, want line %d col %d", bad[i].label, e.file, e.line, e.col,
               bad[i].line, bad[i].col);
        char full[2048];
        graft_error_format(&e, full, sizeof full);
        char want[600];
        snprintf(want, sizeof want, "%s:%d:%d: error: ", path, bad[i].line, bad[i].col);
        CHECKF(strncmp(full, want, strlen(want)) == 0, "%s: formatted '%s'", bad[i].label, full);
        CHECK(t.x == NULL && t.labels == NULL);
    }
    csv_table t;
    graft_error e = {0};
    CHECK_FAILS(csv_read_mem("e.csv", "\n \n", 3, -1, &t, &e), e, 0, "e.csv: the CSV file has no rows",
                "empty");
    CHECK_FAILS(csv_read_mem("h.csv", "a,b\n", 4, -1, &t, &e), e, 0, "header but no data rows",
                "header only");
    CHECK_FAILS(csv_read(tmp_path("none.csv"), -1, &t, &e), e, GRAFT_STATUS_IO, "cannot open",
                "missing");
    /* many rows: the growth path */
    buf b = {0};
    for (int r = 0; r < 5000; r++) buf_printf(&b, "%d,%d,%d\n", r, -r, r % 10);
    CHECK_OK(csv_read_mem("big", b.data, b.len, -1, &t, err));
    CHECK(t.rows == 5000 && t.x[2 * 4999] == 4999 && t.x[2 * 4999 + 1] == -4999 &&
          t.labels[4999] == 9);
    csv_free(&t);
    buf_free(&b);
}

int main(void)
{
    test_good();
    test_bad();
    rm_tmp_dir();
    return test_finish("test_csv");
}
