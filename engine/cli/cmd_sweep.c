/* cmd_sweep.c — `graft sweep` (placeholder until the sweep lands in this branch). */
#include "cli.h"
const char SWEEP_USAGE[] = "usage: graft sweep RECIPE --grid KEY=[V1,V2,...]...\n";
int cmd_sweep(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 2;
}
