/* sort_cpu.c — the CPU walk of a sort / topk plan (sort.h): the shared per-row routine
 * for each row, rows visited in order. */
#include "sort.h"

void so_sort_cpu(const so_sort_plan *pl)
{
    for (int64_t r = 0; r < pl->g.rows; r++) so_sort_one_row(pl, r);
}
