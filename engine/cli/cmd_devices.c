/* cmd_devices.c — `graft devices [--json]`: every device with its probed capabilities. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "runtime.h"

static void print_json(const graft_device_info *d, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = bench_device_json(&d[i], "name");
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2));
    if (s) puts(s);
    free(s);
    json_decref(arr);
}

static void print_table(const graft_device_info *d, int n, int selected)
{
    for (int i = 0; i < n; i++) {
        printf("%s%d:%d  %s  [%s]\n", i == selected ? "* " : "  ", d[i].platform_index,
               d[i].device_index, d[i].name, graft_device_type_name(d[i].type));
        printf("       platform      %s (%s)\n", d[i].platform, d[i].platform_version);
        printf("       vendor        %s\n", d[i].vendor);
        printf("       driver        %s\n", d[i].driver);
        printf("       opencl        %s, %s\n", d[i].cl_version, d[i].cl_c_version);
        printf("       compute units %u @ %u MHz\n", d[i].compute_units, d[i].clock_mhz);
        printf("       memory        global %.1f GiB, local %llu KiB, max alloc %.1f GiB\n",
               (double)d[i].global_mem_bytes / (1 << 30),
               (unsigned long long)d[i].local_mem_bytes / 1024,
               (double)d[i].max_alloc_bytes / (1 << 30));
        printf("       work-group    max %zu\n", d[i].max_work_group_size);
        printf("       vector width  char %u short %u int %u long %u float %u double %u half %u\n",
               d[i].vec_char, d[i].vec_short, d[i].vec_int, d[i].vec_long, d[i].vec_float,
               d[i].vec_double, d[i].vec_half);
        printf("       fp16 %s, fp64 %s\n", d[i].fp16 ? "yes" : "no", d[i].fp64 ? "yes" : "no");
        int pc = program_cache_by_driver(&d[i]);
        if (pc < 0)
            printf("       programs      " PROGRAM_CACHE_BAD_VALUE "\n",
                   getenv("GRAFT_PROGRAM_CACHE"));
        else
            printf("       programs      %s (GRAFT_PROGRAM_CACHE=%s)\n",
                   pc ? "built from source, the driver caches them" : "binaries in Graft's cache",
                   pc ? "driver" : "graft");
    }
    if (selected >= 0) printf("\n* = the default device (GRAFT_DEVICE or first GPU, else first CPU)\n");
}

int cmd_devices(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "devices", cli_commands[0].usage, argc, argv);
    const char *opt, *pos;
    bool json = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) return cli_usage_error(&a, "unexpected argument '%s'", pos);
        if (strcmp(opt, "--json") == 0) json = true;
        else return cli_usage_error(&a, "unknown option %s", opt);
    }
    graft_error e = {0};
    graft_device_info *d;
    int n;
    if (graft_devices_list(&d, &n, &e)) return cli_fail(&e);
    int sel = -1;
    graft_error ignore;
    if (graft_device_select(d, n, NULL, &sel, &ignore)) sel = -1;
    if (json) print_json(d, n);
    else print_table(d, n, sel);
    free(d);
    return 0;
}
