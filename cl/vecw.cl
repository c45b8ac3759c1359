/* vecw.cl — float vectors of the build option VW (4, 8 or 16 lanes) for the CPU-shaped kernels
 * whose width follows the device's preferred vector width: floatv, VLOAD(VW), VSTORE(VW).
 * Included by conv.cl and conv_rows.cl. */
#define VEC_(n) float##n
#define VEC(n) VEC_(n)
#define VLOAD_(n) vload##n
#define VLOAD(n) VLOAD_(n)
#define VSTORE_(n) vstore##n
#define VSTORE(n) VSTORE_(n)
#define floatv VEC(VW)
