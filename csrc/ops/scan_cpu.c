/* scan_cpu.c — CPU walks of the row scans in scan.h (rows in order, the shared per-row
 * math). */
#include "scan.h"

void so_cumsum_cpu(const so_cumsum_plan *pl)
{
    for (int64_t r = 0; r < pl->g.rows; r++) so_cumsum_row(pl, r);
}

void so_cdf_search_cpu(const so_cdf_plan *pl)
{
    for (int64_t e = 0; e < pl->rows * pl->nsamp; e++) so_cdf_search_one(pl, e);
}
