/* test_devspec.c — the device-spec grammar: every form, bad specs, and matching against a fake
 * device list (so it runs without any OpenCL platform). */
#include "base.h" /* the grammar lives in base/ (devspec.c), below recipe/ and runtime/ */
#include "runtime.h"
#include "harness.h"

static graft_device_info dev(int p, int d, const char *platform, const char *vendor,
                             const char *name, graft_device_type t)
{
    graft_device_info i = {0};
    i.platform_index = p;
    i.device_index = d;
    snprintf(i.platform, sizeof i.platform, "%s", platform);
    snprintf(i.vendor, sizeof i.vendor, "%s", vendor);
    snprintf(i.name, sizeof i.name, "%s", name);
    i.type = t;
    return i;
}

static int pick(const graft_device_info *list, int n, const char *spec)
{
    int idx = -1;
    graft_error e = {0};
    if (graft_device_select(list, n, spec, &idx, &e) != GRAFT_OK) return -1;
    return idx;
}

int main(void)
{
    unsetenv("GRAFT_DEVICE");
    devspec s;
    graft_error e = {0};
    CHECK(devspec_parse("", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_DEFAULT);
    CHECK(devspec_parse(NULL, &s, &e) == GRAFT_OK && s.kind == DEVSPEC_DEFAULT);
    CHECK(devspec_parse("cpu", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_TYPE &&
          s.type == GRAFT_DEVICE_CPU);
    CHECK(devspec_parse("GPU", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_TYPE &&
          s.type == GRAFT_DEVICE_GPU);
    const char *vendors[] = {"nvidia", "amd", "intel", "pocl"};
    for (int i = 0; i < 4; i++)
        CHECK(devspec_parse(vendors[i], &s, &e) == GRAFT_OK && s.kind == DEVSPEC_VENDOR &&
              strcmp(s.word, vendors[i]) == 0);
    CHECK(devspec_parse("1:2", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_INDEX && s.platform == 1 &&
          s.device == 2);
    CHECK(devspec_parse(" 0:0 ", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_INDEX);
    CHECK(devspec_parse("H100", &s, &e) == GRAFT_OK && s.kind == DEVSPEC_SUBSTRING &&
          strcmp(s.word, "H100") == 0);
    const char *bad[] = {"0:", ":1", "a:b", "1:2:3", "-1:0", "0:x", "1:-2"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        CHECKF(devspec_parse(bad[i], &s, &e) == GRAFT_STATUS_USAGE, "spec '%s'", bad[i]);
        CHECK(strstr(e.message, "PLATFORM:DEVICE") != NULL);
    }
    char longspec[300];
    memset(longspec, 'x', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = 0;
    CHECK(devspec_parse(longspec, &s, &e) == GRAFT_STATUS_USAGE);

    graft_device_info list[] = {
        dev(0, 0, "Portable Computing Language", "AuthenticAMD", "pthread-znver3-AMD EPYC 7B13",
            GRAFT_DEVICE_CPU),
        dev(1, 0, "NVIDIA CUDA", "NVIDIA Corporation", "NVIDIA H100 80GB HBM3", GRAFT_DEVICE_GPU),
        dev(2, 0, "Intel(R) OpenCL Graphics", "Intel(R) Corporation", "Intel(R) Arc(TM) A770",
            GRAFT_DEVICE_GPU),
        dev(3, 0, "AMD Accelerated Parallel Processing", "Advanced Micro Devices, Inc.",
            "gfx1100", GRAFT_DEVICE_GPU),
    };
    int n = ARRAY_LEN(list);
    CHECK(pick(list, n, NULL) == 1);  /* first GPU */
    CHECK(pick(list, n, "") == 1);
    CHECK(pick(list, 1, NULL) == 0);  /* no GPU: first CPU */
    CHECK(pick(list, n, "cpu") == 0);
    CHECK(pick(list, n, "gpu") == 1);
    CHECK(pick(list, n, "nvidia") == 1);
    CHECK(pick(list, n, "intel") == 2);
    CHECK(pick(list, n, "amd") == 3); /* the AMD GPU, not the CPU whose vendor is AuthenticAMD */
    CHECK(pick(list, 1, "amd") == 0); /* with no AMD GPU, the AMD CPU device */
    CHECK(pick(list, n, "pocl") == 0);
    CHECK(pick(list, n, "2:0") == 2);
    CHECK(pick(list, n, "h100") == 1);
    CHECK(pick(list, n, "EPYC") == 0);
    CHECK(pick(list, n, "a770") == 2);
    CHECK(graft_device_select(list, n, "5:0", &(int){0}, &e) == GRAFT_STATUS_USAGE);
    CHECK(strstr(e.message, "no device 5:0") && strstr(e.message, "H100"));
    CHECK(graft_device_select(list, n, "quadro", &(int){0}, &e) == GRAFT_STATUS_USAGE);
    CHECK(strstr(e.message, "no device matches 'quadro'") != NULL);
    CHECK(graft_device_select(list, 1, "gpu", &(int){0}, &e) == GRAFT_STATUS_USAGE);
    setenv("GRAFT_DEVICE", "intel", 1);
    CHECK(pick(list, n, NULL) == 2); /* env used when no explicit spec */
    CHECK(pick(list, n, "cpu") == 0); /* explicit spec beats env */
    unsetenv("GRAFT_DEVICE");
    /* --devices / train.devices: lists, "all", duplicates, bad items */
    int idx[DEVSPEC_MAX_LIST], k = -1;
    CHECK(devspec_match_list("2:0, nvidia", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) == GRAFT_OK &&
          k == 2 && idx[0] == 2 && idx[1] == 1);
    CHECK(devspec_match_list(" ALL ", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) == GRAFT_OK &&
          k == n && idx[n - 1] == n - 1);
    CHECK(devspec_match_list("h100,1:0", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) ==
              GRAFT_STATUS_USAGE &&
          strstr(e.message, "named twice") != NULL);
    CHECK(devspec_match_list("cpu,,gpu", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) ==
              GRAFT_STATUS_USAGE &&
          strstr(e.message, "empty device spec") != NULL);
    CHECK(devspec_match_list("cpu,0:", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) ==
          GRAFT_STATUS_USAGE);
    CHECK(devspec_match_list("cpu,quadro", list, n, idx, DEVSPEC_MAX_LIST, &k, &e) ==
          GRAFT_STATUS_USAGE);
    CHECK(devspec_match_list("all", list, 0, idx, DEVSPEC_MAX_LIST, &k, &e) == GRAFT_STATUS_USAGE);
    return test_finish("devspec");
}
