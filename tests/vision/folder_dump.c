/* folder_dump.c — test helper: folder_load ROOT at C×H×W (with CLASS... given: folder_load_as
 * with those training classes) and write what it produced, for
 * test_folder.py to compare with Pillow + torchvision: OUT.pix (n×c×h×w bytes), OUT.txt (one
 * "label path" line per image), OUT.report (the skipped files); the error message on failure. */
#include "folder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: folder_dump ROOT C H W stop|skip OUT [CLASS...]\n");
        return 2;
    }
    folder_set f;
    graft_error e = {0};
    const char *const *classes = argc > 7 ? (const char *const *)argv + 7 : NULL;
    if (folder_load_as(argv[1], classes, argc - 7, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                       strcmp(argv[5], "skip") == 0, 0, &f, &e)) {
        fprintf(stderr, "error: %s\n", e.message);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s.pix", argv[6]);
    FILE *o = fopen(path, "wb");
    size_t bytes = (size_t)f.n * f.c * f.h * f.w;
    if (!o || fwrite(f.pix, 1, bytes, o) != bytes || fclose(o)) return 1;
    snprintf(path, sizeof path, "%s.txt", argv[6]);
    o = fopen(path, "w");
    if (!o) return 1;
    for (int k = 0; k < f.nclasses; k++) fprintf(o, "class %d %s\n", k, f.classes[k]);
    for (long i = 0; i < f.n; i++) fprintf(o, "%d %s\n", f.y[i], f.files[i]);
    fclose(o);
    snprintf(path, sizeof path, "%s.report", argv[6]);
    o = fopen(path, "w");
    if (!o) return 1;
    fputs(f.report ? f.report : "", o);
    fclose(o);
    printf("%ld images, %d classes, %ld bad\n", f.n, f.nclasses, f.nbad);
    folder_set_free(&f);
    return 0;
}
