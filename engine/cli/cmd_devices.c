/* cmd_devices.c — `graft devices [--json]`: every device with its probed capabilities. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_json(const graft_device_info *d, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char spec[32];
        snprintf(spec, sizeof spec, "%d:%d", d[i].platform_index, d[i].device_index);
        json_t *o = json_object();
        json_object_set_new(o, "spec", json_string(spec));
        json_object_set_new(o, "platform_index", json_integer(d[i].platform_index));
        json_object_set_new(o, "device_index", json_integer(d[i].device_index));
        json_object_set_new(o, "name", json_string(d[i].name));
        json_object_set_new(o, "vendor", json_string(d[i].vendor));
        json_object_set_new(o, "type", json_string(graft_device_type_name(d[i].type)));
        json_object_set_new(o, "platform", json_string(d[i].platform));
        json_object_set_new(o, "platform_version", json_string(d[i].platform_version));
        json_object_set_new(o, "driver", json_string(d[i].driver));
        json_object_set_new(o, "opencl_version", json_string(d[i].cl_version));
        json_object_set_new(o, "opencl_c_version", json_string(d[i].cl_c_version));
        json_object_set_new(o, "compute_units", json_integer(d[i].compute_units));
        json_object_set_new(o, "clock_mhz", json_integer(d[i].clock_mhz));
        json_object_set_new(o, "global_mem_bytes", json_integer((json_int_t)d[i].global_mem_bytes));
        json_object_set_new(o, "local_mem_bytes", json_integer((json_int_t)d[i].local_mem_bytes));
        json_object_set_new(o, "max_alloc_bytes", json_integer((json_int_t)d[i].max_alloc_bytes));
        json_object_set_new(o, "max_work_group_size",
                            json_integer((json_int_t)d[i].max_work_group_size));
        json_t *v = json_object();
        json_object_set_new(v, "char", json_integer(d[i].vec_char));
        json_object_set_new(v, "short", json_integer(d[i].vec_short));
        json_object_set_new(v, "int", json_integer(d[i].vec_int));
        json_object_set_new(v, "long", json_integer(d[i].vec_long));
        json_object_set_new(v, "float", json_integer(d[i].vec_float));
        json_object_set_new(v, "double", json_integer(d[i].vec_double));
        json_object_set_new(v, "half", json_integer(d[i].vec_half));
        json_object_set_new(o, "preferred_vector_width", v);
        json_object_set_new(o, "fp16", json_boolean(d[i].fp16));
        json_object_set_new(o, "fp64", json_boolean(d[i].fp64));
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
